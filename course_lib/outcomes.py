"""What each chapter must achieve: the checks behind the hidden outcome cells.

Every chapter ends with a hidden cell that records its numbers and checks them::

    recorded = course_lib.record("06_detr", test_map50=test_map50, ...)
    course_lib.outcomes.check(recorded)

A check compares one recorded number with a threshold or with another recorded
number, e.g. ``at_least("test_map50", quick=0.90, full=0.5)`` or
``above("sweep_cnn[0]", "sweep_vit[0]")``. Its **margin** is
how far the run was on the right side (``test_map50 - 0.90``); negative means it failed.

The same checks are evaluated on every run of the robustness matrix (seeds x CPU
kernel sets x threads: ``python -m tools.matrix``, stored in ``reference_runs.json``).
A check belongs in :data:`CHECKS` only if it held in every run of the matrix, with a
smallest margin of at least a third of the spread of its margins across the runs
(:func:`passes_the_rule`; ``tests/test_outcomes.py`` holds the committed matrix to it).
A comparison that flips between machines is not a property of the method: the chapter
shows it as this run's reading beside the matrix's range instead
(:func:`course_lib.references.reading`).

What a failed check does depends on who runs the notebook:

- a **strict** run (``COURSE_STRICT=1``: CI, ``make book``, ``make test``) raises
  ``AssertionError``, so a chapter that still runs but no longer learns fails the build;
- a **learner's** run prints what differs -- the value, the margins the reference runs
  had, what to check -- and carries on.

Errors of the code itself (a missing or non-finite number) raise in both.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ._checks import environment_flag
from ._text import fill

__all__ = [
    "Check",
    "CHECKS",
    "check",
    "evaluate",
    "evaluate_one",
    "passes_the_rule",
    "at_least",
    "at_most",
    "above",
    "below",
    "close",
    "equals",
    "strict_from_environment",
]

PROFILES = ("quick", "full")
QUICK = ("quick",)


@dataclass(frozen=True)
class Check:
    """``left op right * times + plus``, or ``|left - right| < within`` (``op="≈"``),
    or ``left == right`` (``op="=="``, a prediction's answer: no margin).

    ``left`` names a recorded metric (``"recall_by_size[0]"`` picks an element of a
    list); ``right`` is another metric's name or a number per profile.
    """

    left: str
    op: str
    right: str | dict[str, Any]
    why: str
    times: float = 1.0
    plus: float = 0.0
    within: float = 0.0
    profiles: tuple[str, ...] = PROFILES
    key: str = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "key", self.describe())

    def describe(self, profile: str | None = None) -> str:
        """The check as a formula, e.g. ``test_map50 >= 0.9``."""
        right = self.right
        if isinstance(right, dict):
            if profile in right or len(set(right.values())) == 1:
                shown = _number(right.get(profile, next(iter(right.values()))))
            else:
                shown = " / ".join(f"{_number(v)} ({p})" for p, v in right.items())
        else:
            shown = right
            if self.times != 1:
                shown = f"{_number(self.times)} × {shown}"
            if self.plus:
                sign = "+" if self.plus > 0 else "−"
                shown = f"{shown} {sign} {_number(abs(self.plus))}"
        if self.op == "≈":
            return f"|{self.left} − {right}| < {_number(self.within)}"
        return f"{self.left} {self.op} {shown}"

    def applies_to(self, profile: str) -> bool:
        return profile in self.profiles and (
            not isinstance(self.right, dict) or profile in self.right
        )

    def margin(self, metrics: dict[str, Any], profile: str) -> float | None:
        """How far ``metrics`` are on the right side of this check (< 0: it failed;
        0 fails a strict comparison). ``None`` for ``==``, which has no margin."""
        left = lookup(metrics, self.left)
        if self.op == "==":
            return None
        if self.op == "≈":
            return self.within - abs(left - lookup(metrics, self.right))
        if isinstance(self.right, dict):
            bound = self.right[profile]
        else:
            bound = self.times * lookup(metrics, self.right) + self.plus
        return left - bound if self.op in (">", ">=") else bound - left

    def holds(self, metrics: dict[str, Any], profile: str) -> bool:
        if self.op == "==":
            return lookup(metrics, self.left) == self.right
        margin = self.margin(metrics, profile)
        return margin >= 0 if self.op in (">=", "<=") else margin > 0


def _number(x: float) -> str:
    return f"{x:g}"


def lookup(metrics: dict[str, Any], name: str) -> Any:
    """``metrics[name]``, or an element of a list: ``"recall_by_size[0]"``. A missing or
    non-finite number raises: that is an error of the code, not a result."""
    match = re.fullmatch(r"(\w+)(?:\[(-?\d+)\])?", name)
    if match is None:
        raise ValueError(f"not a metric name: {name!r}")
    base, index = match.group(1), match.group(2)
    if base not in metrics or metrics[base] is None:
        raise KeyError(
            f"the check needs the recorded metric {base!r}; record() was given "
            f"{sorted(k for k, v in metrics.items() if v is not None)}"
        )
    value = metrics[base]
    if index is not None:
        value = value[int(index)]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"metric {name!r} is {value}: the run diverged")
    return value


# ---------------------------------------------------------------------------------------
# The constructors the table below is written with.


def at_least(metric: str, *, why: str, **per_profile: float) -> Check:
    """``metric >= threshold``, one threshold per profile: ``quick=0.9, full=0.5``."""
    return Check(metric, ">=", _thresholds(per_profile), why)


def at_most(metric: str, *, why: str, **per_profile: float) -> Check:
    """``metric <= threshold``, one threshold per profile."""
    return Check(metric, "<=", _thresholds(per_profile), why)


def above(
    metric: str,
    other: str,
    *,
    why: str,
    times: float = 1.0,
    plus: float = 0.0,
    strictly: bool = True,
    profiles: tuple[str, ...] = PROFILES,
) -> Check:
    """``metric > times * other + plus`` (``>=`` if not ``strictly``)."""
    op = ">" if strictly else ">="
    return Check(metric, op, other, why, times, plus, profiles=tuple(profiles))


def below(
    metric: str,
    other: str,
    *,
    why: str,
    times: float = 1.0,
    plus: float = 0.0,
    strictly: bool = True,
    profiles: tuple[str, ...] = PROFILES,
) -> Check:
    """``metric < times * other + plus`` (``<=`` if not ``strictly``)."""
    op = "<" if strictly else "<="
    return Check(metric, op, other, why, times, plus, profiles=tuple(profiles))


def close(
    metric: str, other: str, within: float, *, why: str, profiles=PROFILES
) -> Check:
    """``|metric - other| < within``."""
    return Check(metric, "≈", other, why, within=within, profiles=tuple(profiles))


def equals(metric: str, answer: Any, *, why: str, profiles=PROFILES) -> Check:
    """``metric == answer``: the answer of a *predict, then run* question, computed from
    the run. It has no margin; the numeric checks it rests on carry one."""
    return Check(metric, "==", answer, why, profiles=tuple(profiles))


def _thresholds(per_profile: dict[str, float]) -> dict[str, float]:
    unknown = sorted(set(per_profile) - set(PROFILES))
    if unknown or not per_profile:
        raise ValueError(f"thresholds are given per profile {PROFILES}; got {unknown}")
    return per_profile


# ---------------------------------------------------------------------------------------
# The table: what each chapter asserts. Every check here holds in every run of the
# committed robustness matrix, with a margin (tests/test_outcomes.py).

# fmt: off
CHECKS: dict[str, list[Check]] = {
    "01_attention_pooling": [
        equals("outcome_naive_loss", "b", why="the naive training loss falls for "
               "ever as w grows (pred-naive-loss)"),
        below("mse_parametric", "mse_nonparametric",
              why="learning the width beats the fixed width h = 1"),
        below("mse_nonparametric", "mse_average",
              why="Nadaraya–Watson beats average pooling"),
        above("w_best_leave_one_out", "w_tried_smallest", why="the leave-one-out "
              "loss has its minimum inside the range of w tried"),
        below("w_best_leave_one_out", "w_tried_largest", why="the leave-one-out "
              "loss has its minimum inside the range of w tried"),
    ],
    "02_scoring_functions": [
        at_most("sdpa_max_abs_diff", quick=1e-5, full=1e-5,
              why="our attention equals F.scaled_dot_product_attention"),
        equals("worked_example_scores", [0.71, 1.41],
               why="the worked example's scores are 0.71 and 1.41"),
        at_least("lookup_accuracy_dot", quick=0.9, full=0.5,
                 why="dot-product attention learns the look-up"),
        at_least("lookup_accuracy_additive_bias", quick=0.9, full=0.5,
                 why="additive attention with a bias learns the look-up"),
        at_most("lookup_accuracy_additive", quick=0.6, full=0.6,
              why="textbook additive attention cannot (its score is symmetric)"),
        equals("outcome_lookup", "b", why="the answer of pred-additive-symmetry"),
    ],
    "03_multihead_attention": [
        at_most("mha_max_abs_diff_vs_torch", quick=1e-5, full=1e-5,
              why="our multi-head attention equals torch.nn.MultiheadAttention"),
        at_least("attention_memory_slope", quick=1.7, full=1.7,
                 why="attention's memory grows as n²"),
        at_most("attention_memory_slope", quick=2.3, full=2.3,
                why="attention's memory grows as n²"),
        at_most("neighbours_mse_two_heads", quick=0.02, full=0.05,
              why="two heads learn the neighbours task"),
        at_least("neighbours_mse_one_head", quick=0.1, full=0.1,
              why="one head cannot attend to both neighbours"),
        above("neighbours_mse_one_head", "neighbours_mse_two_heads", times=5,
              profiles=QUICK, why="one head is far behind two"),
        equals("outcome_one_head", "c", profiles=QUICK,
               why="the answer of pred-one-head"),
    ],
    "04_transformer": [
        at_least("test_exact_match", quick=0.97, full=0.5,
                 why="the Transformer translates held-out numbers"),
        at_least("test_bleu", quick=95, full=50,
                 why="the Transformer translates held-out numbers"),
        above("test_exact_match_beam", "test_exact_match", plus=-0.005,
              strictly=False, profiles=QUICK,
              why="beam search is no worse than greedy decoding"),
        above("test_exact_match_beam", "test_exact_match", plus=-0.05,
              strictly=False, profiles=("full",),
              why="beam search is no worse than greedy decoding"),
        at_most("no_causal_mask_exact_match", quick=0.2, full=0.2,
              why="without the causal mask the model cheats and fails at test"),
        at_most("no_causal_mask_train_loss", quick=0.5, full=0.5,
              why="without the causal mask the training loss still falls"),
        equals("outcome_no_mask", "b", why="the answer of pred-no-causal-mask"),
        at_least("hard_exact_unseen_combination", quick=0.9,
                 why="unseen combinations of known parts are translated"),
        at_most("hard_exact_beyond_the_range", quick=0.1,
                why="numbers beyond the training range are not"),
        # The hard test as a whole is not checked: it is the mean of the three kinds
        # (equal counts), so the two checks above already bound it to [0.3, 0.7], and
        # the rest is the longer-output share, which the matrix shows varies by run.
        above("one_epoch_exact_sqrt_d", "one_epoch_exact_default_init", plus=0.3,
              strictly=False, profiles=QUICK,
              why="scaling the embeddings by √d helps the first epoch"),
        close("one_epoch_exact_tied", "one_epoch_exact_sqrt_d", 0.05, profiles=QUICK,
              why="tying the embeddings changes little"),
        above("decode_speedup_kv_cache", "decode_speedup_kv_cache_short",
              profiles=QUICK, why="the key-value cache helps long outputs more"),
        at_least("decode_speedup_kv_cache_short", quick=1.0,
              why="the key-value cache makes decoding faster"),
    ],
    "05_vision_transformer": [
        at_least("test_accuracy", quick=0.96, full=0.8,
                 why="the ViT learns to classify the digits"),
        above("sweep_cnn[0]", "sweep_vit[0]", profiles=QUICK,
              why="with the least data the CNN's inductive bias wins"),
        equals("outcome_small_data", "b", profiles=QUICK,
               why="the answer of pred-small-data"),
    ],
    "06_detr": [
        at_least("test_map50", quick=0.90, full=0.5,
                 why="DETR learns to detect the digits"),
        close("map50_101_points", "test_map50", 1e-3,
              why="our 101-point mAP reproduces torchmetrics"),
        close("map50_all_points", "map50_101_points", 0.0100001,
              why="all-point and 101-point AP differ by at most 1/100"),
        below("duplicates_after", "duplicates_before",
              why="training removes duplicate predictions"),
        above("map50_at_budget_pretrained", "map50_at_budget_scratch",
              profiles=QUICK, why="a pre-trained backbone learns faster"),
        equals("outcome_pretrained", "a", profiles=QUICK,
               why="the answer of pred-pretrained"),
        above("cross_attention_in_box", "cross_attention_in_box_uniform", times=5,
              profiles=QUICK, why="a query attends to its own box"),
    ],
    "07_moco": [
        at_least("knn_accuracy_moco", quick=0.96, full=0.5,
                 why="MoCo's features classify the digits by kNN"),
        at_least("linear_probe_moco", quick=0.97, full=0.5,
                 why="MoCo's features classify the digits linearly"),
        above("knn_accuracy_moco", "knn_accuracy_random", plus=0.08, strictly=False,
              why="MoCo's features beat a random encoder's"),
        above("knn_accuracy_moco_shifted", "knn_accuracy_pixels_shifted", plus=0.15,
              strictly=False, profiles=QUICK,
              why="on moved digits MoCo's features beat pixels"),
        below("knn_accuracy_momentum_0", "knn_accuracy_moco_at_stop", plus=-0.1,
              profiles=QUICK, why="momentum 0 ruins the features"),
        equals("outcome_momentum", "c", profiles=QUICK,
               why="the answer of pred-momentum-zero"),
        above("pretext_accuracy_no_shuffle_bn", "pretext_accuracy_at_stop",
              profiles=QUICK, why="without the key shuffle the look-up is easier"),
    ],
}
# fmt: on


# ---------------------------------------------------------------------------------------
# Evaluating the table.


def evaluate(notebook: str, metrics: dict[str, Any], profile: str) -> list[dict]:
    """Each check of ``notebook`` that applies to ``profile``, evaluated on ``metrics``:
    ``[{"check", "shown", "why", "holds", "margin", "left", "right"}]``."""
    if notebook not in CHECKS:
        raise ValueError(f"notebook must be one of {sorted(CHECKS)}; got {notebook!r}")
    return [
        evaluate_one(c, metrics, profile)
        for c in CHECKS[notebook]
        if c.applies_to(profile)
    ]


def evaluate_one(c: Check, metrics: dict[str, Any], profile: str) -> dict[str, Any]:
    """One check on ``metrics``; a missing metric raises ``KeyError``."""
    if isinstance(c.right, dict):
        right = c.right[profile]
    else:
        right = c.right if c.op == "==" else lookup(metrics, c.right)
    return {
        "check": c.key,
        "shown": c.describe(profile),
        "why": c.why,
        "holds": c.holds(metrics, profile),
        "margin": c.margin(metrics, profile),
        "left": lookup(metrics, c.left),
        "right": right,
    }


def passes_the_rule(margins: list[float | None], holds: list[bool]) -> bool:
    """The robustness rule: the check held in every run, and its smallest margin is at
    least a third of the spread (largest minus smallest) of its margins."""
    if not holds or not all(holds):
        return False
    known = [m for m in margins if m is not None]
    if not known:  # '==': holding everywhere is all there is
        return True
    return min(known) >= (max(known) - min(known)) / 3


def strict_from_environment() -> bool:
    """``COURSE_STRICT=1``: a failed outcome check raises (CI, make book, make test)."""
    return environment_flag("COURSE_STRICT", "1 (raise) or 0 (print)")


def check(recorded: dict[str, Any], strict: bool | None = None) -> bool:
    """Check a chapter's recorded numbers (what :func:`course_lib.record` returned)
    against :data:`CHECKS`. Returns True when every check holds.

    A smoke run, or one with its training capped (``COURSE_MAX_STEPS``), learns nothing
    worth checking: only the finiteness that ``record`` enforced. Otherwise a failed
    check raises ``AssertionError`` when ``strict`` (default: ``COURSE_STRICT``), and
    prints what differs when not."""
    from .references import margin_range

    notebook, profile = recorded["notebook"], recorded["profile"]
    strict = strict_from_environment() if strict is None else strict
    if recorded.get("smoke") or recorded.get("max_steps"):
        print("Training was capped: the outcome checks are skipped.")
        return True
    results = evaluate(notebook, recorded["metrics"], profile)
    failed = [r for r in results if not r["holds"]]
    if not failed:
        print(f"All {len(results)} outcome checks of {notebook} hold.")
        return True
    lines = [f"{len(failed)} of {len(results)} outcome checks of {notebook} failed:"]
    for r in failed:
        seen = margin_range(notebook, r["check"], profile)
        lines.append(
            fill(
                f"✗ {r['why']}: {r['shown']} did not hold "
                f"({_value(r['left'])} against {_value(r['right'])})"
                + (f"; in the reference runs its margin was {seen}" if seen else ""),
                indent="  ",
            )
        )
    if strict:
        raise AssertionError("\n".join(lines))
    lines.append(
        fill(
            "This run came out differently from the reference runs; the rest of the "
            "chapter is fine to read. What to check: run the notebook from the top in "
            "a fresh kernel (Runtime > Restart and run all) without changing HP; an "
            "exercise solution run out of order, or an edited cell, changes the "
            "training. If it still differs, tell us your machine and COURSE_SEED.",
            indent="  ",
        )
    )
    print("\n".join(lines))
    return False


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
