"""How did your run go? This run's numbers next to the reference runs.

The reference runs are the **robustness matrix**: every chapter run in the quick
profile over several seeds, two sets of CPU kernels (PyTorch, MKL and oneDNN choose
their kernels by instruction set, so the same seed trains differently on another CPU)
and one or two threads. ``python -m tools.matrix`` runs it and stores one row per run
in ``reference_runs.json`` next to this file. Three things read it:

- :func:`on_track`, the last visible cell of each chapter: is each headline number no
  worse than the worst reference run by more than a margin (the width of the range, or
  5 % of the number, whichever is larger)? Better than every reference run is on track.
- :func:`reading`, wherever the text compares two things that do not come out the same
  way on every machine: this run's reading next to the range of the reference runs,
  printed from the file, so that re-measuring updates the book.
- :func:`course_lib.outcomes.check`, to say what margin the reference runs had.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from . import quantities
from ._checks import plain_number
from ._text import fill

__all__ = [
    "HEADLINES",
    "on_track",
    "reading",
    "reference_runs",
    "reference_ranges",
    "describe_runs",
    "margin_range",
    "verdict",
]

REFERENCE_FILE = Path(__file__).with_name("reference_runs.json")
PROFILE = "quick"  # the profile the reference runs are measured in

HEADLINES = quantities.HEADLINES  # notebook -> metric -> Quantity(label, group, better)


@cache
def reference_runs() -> list[dict[str, Any]]:
    """Every run of the matrix: ``{"notebook", "profile", "seed", "cpu_capability",
    "threads", "torch", "metrics", ...}``; none before the matrix is first measured."""
    if not REFERENCE_FILE.exists():
        return []
    return json.loads(REFERENCE_FILE.read_text())["runs"]


def runs_of(notebook: str, profile: str = PROFILE) -> list[dict[str, Any]]:
    """The reference runs of one notebook in one profile."""
    return [
        r
        for r in reference_runs()
        if r["notebook"] == notebook and r["profile"] == profile
    ]


def describe_runs(runs: list[dict[str, Any]]) -> str:
    """E.g. '9 reference runs (seeds 0–4; AVX2, AVX512 kernels; 1, 2 threads)'."""
    if not runs:
        return "no reference runs"

    def listed(key: str) -> str:
        values = sorted({r[key] for r in runs})
        if key == "seed" and values == list(range(values[0], values[-1] + 1)):
            return f"{values[0]}–{values[-1]}" if len(values) > 1 else str(values[0])
        return ", ".join(str(v) for v in values)

    return (
        f"{len(runs)} reference runs (seeds {listed('seed')}; "
        f"{listed('cpu_capability')} kernels; {listed('threads')} threads)"
    )


def reference_ranges() -> dict[str, Any]:
    """The headline ranges on_track compares with:
    ``{"profile", "runs", "notebooks": {stem: {metric: {label, better, min, max,
    values}}}}``."""
    notebooks = {}
    for stem, headlines in HEADLINES.items():
        runs = runs_of(stem)
        notebooks[stem] = {}
        for metric, (label, _, better) in headlines.items():
            values = [r["metrics"][metric] for r in runs if metric in r["metrics"]]
            notebooks[stem][metric] = {
                "label": label,
                "better": better,
                "min": min(values) if values else math.nan,
                "max": max(values) if values else math.nan,
                "values": values,
            }
    return {
        "profile": PROFILE,
        "runs": describe_runs([r for r in reference_runs() if r["profile"] == PROFILE]),
        "notebooks": notebooks,
    }


def _margin(low: float, high: float) -> float:
    return max(high - low, 0.05 * max(abs(low), abs(high)), 1e-3)


def verdict(notebook: str, metric: str, value: float) -> tuple[bool, str]:
    """(on track?, a sentence) for one recorded number of ``notebook``."""
    reference = reference_ranges()["notebooks"][notebook][metric]
    low, high, better = reference["min"], reference["max"], reference["better"]
    label = reference.get("label", metric)
    seen = f"{low:.4g}–{high:.4g}" if low != high else f"{low:.4g}"
    if math.isnan(value):
        return False, f"{label} is NaN: the training diverged"
    margin = _margin(low, high)
    if better == "higher":
        ok, beyond = value >= low - margin, value > high
    else:
        ok, beyond = value <= high + margin, value < low
    if not ok:
        side = "below" if better == "higher" else "above"
        return False, f"{label} = {value:.4g} is {side} the reference runs ({seen})"
    note = " (better than every reference run)" if beyond else ""
    return True, f"{label} = {value:.4g}; reference runs {seen}{note}"


def on_track(notebook: str, profile: str | None = None, **metrics: float) -> bool:
    """Print whether this run's headline ``metrics`` are where the reference runs of
    ``notebook`` were, and what to check if not. ``profile`` defaults to the one
    :func:`course_lib.setup` chose. Returns True when every number is on track (and
    False when there is no reference for this profile)."""
    from . import _CONFIG  # the setup() of this session, read now

    profile = profile or (_CONFIG.profile if _CONFIG is not None else PROFILE)
    stored = reference_ranges()
    if notebook not in stored["notebooks"]:
        raise ValueError(
            f"notebook must be one of {sorted(stored['notebooks'])}; got {notebook!r}"
        )
    known = stored["notebooks"][notebook]
    unknown = sorted(set(metrics) - set(known))
    if unknown or not metrics:
        raise ValueError(
            f"the headline metrics of {notebook} are {sorted(known)}; got "
            f"{sorted(metrics)}"
        )
    if profile != stored["profile"] or not runs_of(notebook):
        print(
            fill(
                f"No reference runs exist for {notebook} in the {profile} profile yet: "
                "nothing to compare with."
            )
        )
        return False
    results = [
        verdict(notebook, name, plain_number(name, value))
        for name, value in metrics.items()
    ]
    where = describe_runs(runs_of(notebook))
    if all(ok for ok, _ in results):
        print(fill(f"On track. Compared with {where}:"))
    else:
        print(fill(f"Not where the reference runs were. Compared with {where}:"))
    for ok, sentence in results:
        print(fill(f"{'✓' if ok else '✗'} {sentence}", indent="  "))
    if not all(ok for ok, _ in results):
        print(
            fill(
                "What to check: run the notebook from the top in a fresh kernel "
                "(Runtime > Restart and run all), without changing HP; an exercise "
                "solution run out of order, or an edited cell, can change the "
                "training. If it still differs, tell us your machine and COURSE_SEED.",
                indent="  ",
            )
        )
    return all(ok for ok, _ in results)


def margin_range(notebook: str, check: str, profile: str = PROFILE) -> str | None:
    """The smallest and largest margin of an outcome check (its formula, as
    ``course_lib.outcomes`` writes it) over the reference runs, in words; None when
    there are none."""
    from .outcomes import evaluate

    margins = []
    for run in runs_of(notebook, profile):
        for result in evaluate(notebook, run["metrics"], profile):
            if result["check"] == check and result["margin"] is not None:
                margins.append(result["margin"])
    if not margins:
        return None
    return f"{min(margins):.3g} to {max(margins):.3g} over {len(margins)} runs"


def reading(
    notebook: str,
    label: str,
    this_run: float,
    of: str | tuple[str, str] | Callable[[dict[str, Any]], float],
    *,
    digits: int = 3,
    signed: bool = False,
) -> tuple[float, float]:
    """Print this run's value of a quantity next to its range over the reference runs,
    and return that range ``(lowest, highest)``.

    ``of`` says how the quantity is computed from a run's recorded metrics: a metric's
    name (``"recall_by_size[0]"`` picks an element of a list), a pair of names ``(a, b)``
    for the difference ``a - b``, or a function of the metrics. Use it for a comparison
    that does not come out the same way on every machine: the book then states the
    reading and the range, never a typed-in number.
    """
    from .outcomes import lookup

    def value(metrics: dict[str, Any]) -> float:
        if isinstance(of, str):
            return float(lookup(metrics, of))
        if isinstance(of, tuple):
            return float(lookup(metrics, of[0]) - lookup(metrics, of[1]))
        return float(of(metrics))

    runs, values = [], []
    for run in runs_of(notebook):
        try:
            values.append(value(run["metrics"]))
        except KeyError:  # a run of older code that did not record this quantity
            continue
        runs.append(run)
    shown = f"{{:{'+' if signed else ''}.{digits}f}}".format
    if not values:
        print(fill(f"{label}: {shown(this_run)} in this run; no reference runs yet."))
        return math.nan, math.nan
    low, high = min(values), max(values)
    sentence = (
        f"{label}: {shown(this_run)} in this run; from {shown(low)} to "
        f"{shown(high)} over the {describe_runs(runs)}"
    )
    if signed:
        positive = sum(v > 0 for v in values)
        sentence += f", above zero in {positive} of {len(values)}"
    print(fill(sentence + "."))
    return low, high
