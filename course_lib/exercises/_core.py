"""How an exercise is checked.

An :class:`Exercise` has a reference solution, a few test cases and a list of
*typical mistakes*, each a small wrong implementation with a message. The checker
runs the learner's function on every case and compares with the reference. When a
case fails, it also runs each typical mistake on that case: if the learner's output
equals a mistake's output, the feedback names the mistake ("the softmax runs over
the queries, not the keys") instead of only printing numbers.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "Case",
    "Mistake",
    "Exercise",
    "register",
    "check",
    "EXERCISES",
    "compare_outputs",
    "NOT_ATTEMPTED",
]

NOT_ATTEMPTED = "not attempted yet"


@dataclass
class Case:
    """One input to try. ``make_args()`` builds fresh arguments every call (seeded, so
    the reference and the learner see identical inputs). ``raises``: the exception a
    correct function must raise on this input (e.g. ``ValueError`` for a bad shape)."""

    description: str
    make_args: Callable[[], tuple]
    raises: type[Exception] | None = None


@dataclass
class Mistake:
    """A typical wrong answer: ``implementation`` reproduces it, ``message`` explains it."""

    message: str
    implementation: Callable


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    if isinstance(x, (tuple, list)):
        return f"{type(x).__name__} of {len(x)} items"
    return type(x).__name__


def _short(x: torch.Tensor) -> str:
    values = x.detach().flatten()[:6].tolist()
    text = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in values)
    return f"[{text}{', ...' if x.numel() > 6 else ''}]"


_LOW_PRECISION = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def compare_outputs(
    expected: Any,
    got: Any,
    *,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    what: str = "the output",
    names: Sequence[str] | None = None,
) -> str | None:
    """``None`` when ``got`` matches ``expected``, else a sentence saying what differs.

    Tensors are compared by type, shape, NaN/inf and values; tuples element-wise
    (``names`` names the items of a tuple, e.g. ``("output", "weights")``).
    """
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)):
            return f"{what} should be a tuple of {len(expected)} items; got a {_describe(got)}"
        if len(got) != len(expected):
            return f"{what} should have {len(expected)} items; got {len(got)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            item = (
                f"the returned {names[i]}"
                if names and i < len(names)
                else f"item {i} of {what}"
            )
            problem = compare_outputs(e, g, rtol=rtol, atol=atol, what=item)
            if problem:
                return problem
        return None
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"{what} should be a torch.Tensor; got a {_describe(got)}"
        if got.shape != expected.shape:
            return (
                f"{what} has shape {tuple(got.shape)}; expected {tuple(expected.shape)}"
            )
        if expected.dtype == torch.bool or not torch.is_floating_point(expected):
            if got.dtype != expected.dtype:
                return f"{what} has dtype {got.dtype}; expected {expected.dtype}"
            if not torch.equal(got, expected):
                wrong = (got != expected).nonzero()[0].tolist()
                return (
                    f"{what} differs at index {tuple(wrong)}: expected "
                    f"{expected[tuple(wrong)].item()}, got {got[tuple(wrong)].item()}"
                )
            return None
        if not torch.is_floating_point(got):
            return f"{what} has dtype {got.dtype}; expected a floating-point tensor ({expected.dtype})"
        if expected.dtype in _LOW_PRECISION:  # compare at the precision of the inputs
            rtol, atol = max(rtol, _LOW_PRECISION[expected.dtype]), max(atol, 1e-3)
        g, e = got.detach().double().cpu(), expected.detach().double().cpu()
        if torch.isnan(g).any() and not torch.isnan(e).any():
            return f"{what} contains NaN (at {tuple(torch.isnan(g).nonzero()[0].tolist())})"
        if torch.isinf(g).any() and not torch.isinf(e).any():
            return f"{what} contains inf"
        tolerance = atol + rtol * e.abs()
        bad = ~((g - e).abs() <= tolerance) & ~(torch.isnan(g) & torch.isnan(e))
        if bad.any():
            index = tuple(bad.nonzero()[0].tolist())
            return (
                f"{what} has the right shape but wrong values: max abs difference "
                f"{(g - e).abs()[bad].max().item():.3g}; at index {index} expected "
                f"{e[index].item():.4g}, got {g[index].item():.4g}. "
                f"Expected starts {_short(e)}, yours {_short(g)}"
            )
        return None
    if isinstance(expected, (int, float)):
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            return f"{what} should be a number; got a {_describe(got)}"
        if not math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
            return f"{what} is {got}; expected {expected}"
        return None
    return None if got == expected else f"{what} is {got!r}; expected {expected!r}"


def _call(fn: Callable, args: tuple) -> Any:
    return fn(*args)


@dataclass
class Exercise:
    """A coding exercise: what to call, on what, and what typical mistakes look like.

    ``run(fn, args)`` calls the function and returns what is compared (default
    ``fn(*args)``; an in-place exercise returns the state it changed).
    ``compare(expected, got, args)`` returns ``None`` or a problem sentence (default:
    :func:`compare_outputs`, with ``output_names`` naming the items of a tuple).
    ``none_means_unattempted``: a stub that returns ``None`` counts as unattempted.
    """

    id: str
    title: str
    signature: str
    reference: Callable
    cases: Sequence[Case]
    mistakes: Sequence[Mistake] = field(default_factory=list)
    run: Callable[[Callable, tuple], Any] = _call
    compare: Callable[[Any, Any, tuple], str | None] | None = None
    output_names: Sequence[str] | None = None
    none_means_unattempted: bool = True

    def problem(self, expected: Any, got: Any, args: tuple) -> str | None:
        if self.compare is not None:
            return self.compare(expected, got, args)
        return compare_outputs(expected, got, names=self.output_names)


EXERCISES: dict[str, Exercise] = {}


def register(exercise: Exercise) -> Exercise:
    if exercise.id in EXERCISES:
        raise ValueError(f"exercise id {exercise.id!r} is registered twice")
    EXERCISES[exercise.id] = exercise
    return exercise


def _diagnose(exercise: Exercise, case: Case, got: Any) -> str | None:
    for mistake in exercise.mistakes:
        try:
            wrong = exercise.run(mistake.implementation, case.make_args())
        # a mistake that cannot even run on this case cannot explain it
        except Exception:
            continue
        if exercise.problem(wrong, got, case.make_args()) is None:
            return mistake.message
    return None


def check(exercise_id: str, fn: Callable, *, verbose: bool = True) -> bool:
    """Check the learner's ``fn`` for exercise ``exercise_id``; print feedback; return
    whether it passed. Never raises because of ``fn``: an unattempted stub prints
    "not attempted yet" and returns ``False``."""
    if exercise_id not in EXERCISES:
        raise ValueError(
            f"unknown exercise_id {exercise_id!r}; known: {', '.join(sorted(EXERCISES))}"
        )
    exercise = EXERCISES[exercise_id]
    say = print if verbose else (lambda *a, **k: None)
    if not callable(fn):
        say(
            f"✗ {exercise_id}: pass the function itself, {exercise.signature}; got a {_describe(fn)}"
        )
        return False

    for number, case in enumerate(exercise.cases, start=1):
        label = f"{exercise_id}, case {number} of {len(exercise.cases)} ({case.description})"
        try:
            got = exercise.run(fn, case.make_args())
        except NotImplementedError:
            say(f"· {exercise_id}: {NOT_ATTEMPTED} (fill in the function, run again).")
            return False
        # the learner's bug (or the wanted error), reported, not raised
        except Exception as error:
            if case.raises is not None and isinstance(error, case.raises):
                continue
            location = traceback.extract_tb(error.__traceback__)[-1]
            expected = (
                f"; it should raise {case.raises.__name__}" if case.raises else ""
            )
            say(
                f"✗ {label}: your function raised {type(error).__name__}: {error}{expected}  "
                f"[line {location.lineno}: {location.line}]"
            )
            return False
        if got is None and exercise.none_means_unattempted:
            say(f"· {exercise_id}: {NOT_ATTEMPTED} (your function returned None).")
            return False
        if case.raises is not None:
            lines = [f"✗ {label}:"]
            diagnosis = _diagnose(exercise, case, got)
            if diagnosis:
                lines.append(f"  Likely mistake: {diagnosis}")
            lines.append(
                f"  Detail: this input must raise {case.raises.__name__}; your function "
                f"returned a {_describe(got)}"
            )
            say("\n".join(lines))
            return False
        expected = exercise.run(exercise.reference, case.make_args())
        problem = exercise.problem(expected, got, case.make_args())
        if problem:
            diagnosis = _diagnose(exercise, case, got)
            lines = [f"✗ {label}:"]
            if diagnosis:
                lines.append(f"  Likely mistake: {diagnosis}")
            lines.append(f"  Detail: {problem}")
            say("\n".join(lines))
            return False
    say(f"✓ {exercise_id}: correct on all {len(exercise.cases)} cases.")
    return True
