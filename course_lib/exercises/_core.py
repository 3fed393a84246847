"""How an exercise is checked.

An :class:`Exercise` has a reference solution, a few test cases and a list of
*typical mistakes*, each a small wrong implementation with a message. The checker
runs the learner's function on every case and compares with the reference. When a
case fails, it also runs each typical mistake on that case: if the learner's output
equals a mistake's output, or the learner's function fails the way the mistake does,
the feedback names the mistake ("the softmax runs over the queries, not the keys")
instead of only printing numbers.

The checker is never wrong about the learner:

- "not attempted yet" only for the untouched stub, whose ``NotImplementedError``
  stops every case; anything else is an attempt, and the feedback says how many
  cases were right;
- whatever the learner's function returns or raises, :func:`check` reports it and
  returns ``False``; it raises only for a wrong ``exercise_id``;
- a case that runs longer than ``time_limit`` seconds is stopped and reported
  (through ``SIGALRM``: on the main thread of a Unix process, where Jupyter runs
  cells; elsewhere there is no limit, and a single long PyTorch call is stopped
  only when it returns);
- the checks run on their own random state: the caller's ``torch``, ``numpy`` and
  ``random`` streams are the same afterwards;
- a function that changes its inputs in place is wrong, and told which argument it
  changed (unless the exercise is to change it: ``Exercise.changes``);
- a function that calls the library function the exercise stands for (or a PyTorch one
  that does the whole exercise, ``Exercise.stands_for``) is rejected before it runs:
  the exercise is to write it.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import math
import random
import re
import signal
import sys
import threading
import traceback
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "Case",
    "Mistake",
    "Exercise",
    "register",
    "check",
    "EXERCISES",
    "compare_outputs",
    "library_calls",
    "NOT_ATTEMPTED",
    "RESULTS",
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
    """A typical wrong answer: ``implementation`` reproduces it, ``message`` explains it.

    ``error``, a regular expression, recognises the mistake from the message of the
    exception it makes the learner's function raise (e.g. ``"overflow"`` for a -1e9
    fill in float16); without it, a learner's error agrees with this mistake when
    ``implementation`` raises the same type of exception on that case. Either way the
    mistake is named only if it agrees with the learner's function on every case."""

    message: str
    implementation: Callable
    error: str | None = None


def _describe(x: Any) -> str:
    """What ``x`` is, with its article: "a tensor of shape (3,) and dtype ..."."""
    if x is None:
        return "None (does your function end with a `return`?)"
    if isinstance(x, torch.Tensor):
        where = " on the meta device (it holds no values)" if x.is_meta else ""
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}{where}"
    if isinstance(x, np.ndarray):
        return f"a numpy array of shape {x.shape} (convert it with torch.from_numpy)"
    if isinstance(x, (tuple, list)):
        return f"a {type(x).__name__} of {len(x)} items"
    return f"a {type(x).__name__}"


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
            return f"{what} should be a tuple of {len(expected)} items; got {_describe(got)}"
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
        if not isinstance(got, torch.Tensor) or got.is_meta:
            return f"{what} should be a torch.Tensor; got {_describe(got)}"
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
            return (
                f"{what} has dtype {got.dtype}; expected a floating-point tensor "
                f"({expected.dtype})"
            )
        if expected.dtype in _LOW_PRECISION:  # compare at the precision of the inputs
            rtol, atol = max(rtol, _LOW_PRECISION[expected.dtype]), max(atol, 1e-3)
        g, e = got.detach().double().cpu(), expected.detach().double().cpu()
        if torch.isnan(g).any() and not torch.isnan(e).any():
            return f"{what} contains NaN (at {tuple(torch.isnan(g).nonzero()[0].tolist())})"
        if torch.isinf(g).any() and not torch.isinf(e).any():
            return f"{what} contains inf"
        tolerance = atol + rtol * e.abs()
        close = (g == e) | ((g - e).abs() <= tolerance) | (g.isnan() & e.isnan())
        bad = ~close
        if bad.any():
            index = tuple(bad.nonzero()[0].tolist())
            return (
                f"{what} has the right shape but wrong values: max abs difference "
                f"{(g - e).abs()[bad].max().item():.3g}; at index {index} expected "
                f"{e[index].item():.4g}, got {g[index].item():.4g}. "
                f"Expected starts {_short(e)}, yours {_short(g)}"
            )
        return None
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        if isinstance(got, torch.Tensor) and got.numel() == 1 and not got.is_meta:
            got = got.item()  # a one-number tensor is a number
        elif isinstance(got, np.generic):
            got = got.item()  # and so is a NumPy scalar
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            return f"{what} should be a number; got {_describe(got)}"
        if isinstance(expected, int) and not isinstance(got, int):
            return f"{what} should be an int; got {got!r}"
        if not math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
            return f"{what} is {got}; expected {expected}"
        return None
    if type(got) is not type(expected):
        return f"{what} should be a {type(expected).__name__}; got {_describe(got)}"
    return None if got == expected else f"{what} is {got!r}; expected {expected!r}"


def _call(fn: Callable, args: tuple) -> Any:
    return fn(*args)


@dataclass
class Exercise:
    """A coding exercise: what to call, on what, and what typical mistakes look like.

    ``chapter`` is the notebook's stem (``"02_scoring_functions"``), for
    :func:`progress`. ``run(fn, args)`` calls the function and returns what is
    compared (default ``fn(*args)``; an in-place exercise returns the state it
    changed). ``compare(expected, got, args)`` returns ``None`` or a problem sentence
    (default: :func:`compare_outputs`, with ``output_names`` naming the items of a
    tuple). ``stands_for``: the library or PyTorch functions that do the whole
    exercise, which the learner's function may not call. ``changes``: the arguments it
    is meant to change in place (any other changed argument is a mistake).
    """

    id: str
    title: str
    chapter: str
    signature: str
    reference: Callable
    cases: Sequence[Case]
    mistakes: Sequence[Mistake] = field(default_factory=list)
    run: Callable[[Callable, tuple], Any] = _call
    compare: Callable[[Any, Any, tuple], str | None] | None = None
    output_names: Sequence[str] | None = None
    # what does the whole exercise and may not be called: "course_lib.attention.
    # nadaraya_watson", or "module.function:keyword" for a call with that keyword
    stands_for: Sequence[str] = ()
    # the positions of the arguments the function is meant to change in place
    changes: Sequence[int] = ()

    def problem(self, expected: Any, got: Any, args: tuple) -> str | None:
        if self.compare is not None:
            return self.compare(expected, got, args)
        return compare_outputs(expected, got, names=self.output_names)


EXERCISES: dict[str, Exercise] = {}
# what check() found for each exercise in this session: "passed", "failed" or
# NOT_ATTEMPTED (read by progress())
RESULTS: dict[str, str] = {}


def register(exercise: Exercise) -> Exercise:
    if exercise.id in EXERCISES:
        raise ValueError(f"exercise id {exercise.id!r} is registered twice")
    EXERCISES[exercise.id] = exercise
    return exercise


# -- running the learner's code safely -----------------------------------------------


class _TookTooLong(BaseException):
    """Raised by the alarm; a BaseException, so that a learner's ``except Exception``
    cannot swallow it."""


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    usable = (
        seconds is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def alarm(signum, frame):
        raise _TookTooLong

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _own_random_state() -> Iterator[None]:
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def _signature_problem(fn: Callable, args: tuple) -> str | None:
    """Why ``fn`` cannot take ``args``, or None (also when Python cannot tell)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*args)
    except TypeError as error:
        return f"your function{signature} cannot take {len(args)} arguments ({error})"
    return None


def _where(error: BaseException) -> str:
    """The learner's line that raised: the last frame outside course_lib and outside
    installed packages (their frames say little about the learner's code)."""
    library = str(Path(__file__).resolve().parents[1])
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not str(Path(frame.filename).resolve()).startswith(library)
        and "site-packages" not in frame.filename
    ]
    if not frames:
        return ""
    code = f": {frames[-1].line}" if frames[-1].line else ""
    return f"  [line {frames[-1].lineno}{code}]"


def _resolve(dotted: str) -> Any:
    """The object a dotted name such as ``torch.nn.MultiheadAttention`` names."""
    module_name, _, rest = dotted.partition(".")
    obj = importlib.import_module(module_name)
    for part in rest.split(".") if rest else []:
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module(f"{obj.__name__}.{part}")
    return obj


def _unwrapped(obj: Any) -> Any:
    """A static or class method's function (how a class holds it, and how it is got)."""
    if isinstance(obj, (staticmethod, classmethod)) or inspect.ismethod(obj):
        return obj.__func__
    return obj


def _names_in(code: types.CodeType) -> tuple[set[str], set[str]]:
    """The global and attribute names a function's code uses, and its string constants
    (keyword-argument names among them), nested functions and lambdas included."""
    names, strings = set(code.co_names) | set(code.co_freevars), set()
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            inner_names, inner_strings = _names_in(const)
            names |= inner_names
            strings |= inner_strings
        elif isinstance(const, str):
            strings.add(const)
        elif isinstance(const, tuple):
            strings |= {c for c in const if isinstance(c, str)}
    return names, strings


def library_calls(fn: Callable, stands_for: Sequence[str]) -> list[str]:
    """Which of ``stands_for`` ``fn`` is, or names in its code (directly, or through a
    module or class it names: ``attention.nadaraya_watson``, ``nn.MultiheadAttention``)."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return [
            d
            for d in stands_for
            if _unwrapped(fn) is _unwrapped(_resolve(d.partition(":")[0]))
        ]
    names, strings = _names_in(code)
    scope = dict(getattr(fn, "__globals__", {}))
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        with contextlib.suppress(ValueError):  # an empty cell
            scope[name] = cell.cell_contents
    reached = {id(scope[n]): scope[n] for n in names if n in scope}
    # a module imported inside the function is a local name: `import torchvision` and
    # `from torchvision.ops import nms` name the module in the code, so look it up
    for name in names:
        module = sys.modules.get(name)
        if module is not None:
            reached.setdefault(id(module), module)
    for _ in range(4):  # torch.nn.functional.cross_entropy: modules within modules
        for obj in list(reached.values()):
            if inspect.ismodule(obj) or inspect.isclass(obj):
                for attr in names:
                    found = _unwrapped(inspect.getattr_static(obj, attr, None))
                    if found is not None:
                        reached.setdefault(id(found), found)
    calls = []
    for dotted in stands_for:
        target_name, _, keyword = dotted.partition(":")
        target = _unwrapped(_resolve(target_name))
        if (fn is target or id(target) in reached) and (
            not keyword or keyword in strings
        ):
            calls.append(target_name + (f"(..., {keyword}=...)" if keyword else ""))
    return calls


def _tensors(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (tuple, list)):
        return [t for item in x for t in _tensors(item)]
    if isinstance(x, dict):
        return [t for item in x.values() for t in _tensors(item)]
    return []


def _changed_argument(
    fn: Callable, args: tuple, before: list[list[torch.Tensor]], allowed: Sequence[int]
) -> str | None:
    """The name of an argument whose tensors ``fn`` changed in place, or None."""
    for position, (arg, saved) in enumerate(zip(args, before)):
        if position in allowed:
            continue
        now = _tensors(arg)
        if any(
            a.shape != b.shape or not torch.equal(a.detach(), b)
            for a, b in zip(now, saved)
        ):
            try:
                return f"`{list(inspect.signature(fn).parameters)[position]}`"
            except (TypeError, ValueError, IndexError):
                return f"number {position + 1}"
    return None


@dataclass
class _Outcome:
    """What the learner's function did on one case: returned ``got``, raised ``error``
    (``stub``: the untouched stub's bare NotImplementedError), or could not be run
    (``lines`` say why). ``right``: it matched the reference."""

    right: bool = False
    stub: bool = False
    got: Any = None
    returned: bool = False
    error: Exception | None = None
    lines: list[str] = field(default_factory=list)


def _run_case(
    exercise: Exercise, case: Case, fn: Callable, time_limit: float | None
) -> _Outcome:
    args = case.make_args()
    bad_signature = _signature_problem(fn, args)
    if bad_signature:
        return _Outcome(lines=[f"{bad_signature}; expected {exercise.signature}"])
    before = [[t.detach().clone() for t in _tensors(arg)] for arg in args]
    try:
        with _time_limit(time_limit):
            got = exercise.run(fn, args)
    except _TookTooLong:
        return _Outcome(
            lines=[
                f"your function took longer than {time_limit:g} s (an endless loop?); "
                "pass time_limit= to check() to allow more"
            ]
        )
    # the learner's bug (or the wanted error): reported, never raised
    except Exception as error:
        if isinstance(error, NotImplementedError) and not str(error):
            return _Outcome(stub=True, error=error, lines=["it is still the stub"])
        if case.raises is not None and isinstance(error, case.raises):
            return _Outcome(right=True, error=error)
        should = f"; it should raise {case.raises.__name__}" if case.raises else ""
        return _Outcome(
            error=error,
            lines=[
                f"your function raised {type(error).__name__}: {error}{should}"
                + _where(error)
            ],
        )
    if case.raises is not None:
        return _Outcome(
            got=got,
            returned=True,
            lines=[
                f"this input must raise {case.raises.__name__}; your function "
                f"returned {_describe(got)}"
            ],
        )
    changed = _changed_argument(fn, args, before, exercise.changes)
    if changed:
        return _Outcome(
            got=got,
            returned=True,
            lines=[
                f"your function changed its argument {changed} in place; the caller "
                "still needs it. Compute a new tensor instead (out-of-place "
                "operations, or work on a .clone())."
            ],
        )
    expected = exercise.run(exercise.reference, case.make_args())
    try:
        problem = exercise.problem(expected, got, case.make_args())
    except Exception as error:  # an output the comparison did not foresee
        problem = (
            f"your function returned {_describe(got)}, which could not be compared "
            f"with the expected output, {_describe(expected)} "
            f"({type(error).__name__}: {error})"
        )
    lines = [] if problem is None else [f"Detail: {problem}"]
    return _Outcome(right=problem is None, got=got, returned=True, lines=lines)


def _agrees(
    exercise: Exercise, mistake: Mistake, case: Case, outcome: _Outcome
) -> bool:
    """Whether ``mistake`` does on ``case`` what the learner's function did."""
    try:
        with _time_limit(10.0):
            wrong = exercise.run(mistake.implementation, case.make_args())
    except _TookTooLong:
        return False
    except Exception as theirs:
        # both fail: the same kind of error will do (the learner's code may fail one
        # line earlier or later than the mistake's); the other cases must agree too
        error = outcome.error
        return error is not None and (
            re.search(mistake.error, str(error)) is not None
            if mistake.error is not None
            else type(theirs) is type(error)
        )
    if not outcome.returned:
        return (
            outcome.error is not None
            and mistake.error is not None
            and re.search(mistake.error, str(outcome.error)) is not None
        )
    try:
        return exercise.problem(wrong, outcome.got, case.make_args()) is None
    except Exception:
        return False


def _likely_mistake(exercise: Exercise, outcomes: list[_Outcome]) -> str | None:
    """The typical mistake that does what the learner's function did on *every* case,
    or None: a mistake that explains one case but not another is not the learner's,
    and the checker would rather say nothing than name the wrong one. A case that timed
    out, or that the function's signature could not take, is one no mistake explains."""
    if any(not o.returned and o.error is None and not o.stub for o in outcomes):
        return None
    ran = [
        (case, outcome)
        for case, outcome in zip(exercise.cases, outcomes)
        if outcome.returned or (outcome.error is not None and not outcome.stub)
    ]
    for mistake in exercise.mistakes:
        if ran and all(_agrees(exercise, mistake, c, o) for c, o in ran):
            return mistake.message
    return None


def check(
    exercise_id: str,
    fn: Callable,
    *,
    verbose: bool = True,
    time_limit: float | None = 5.0,
) -> bool:
    """Check the learner's ``fn`` for exercise ``exercise_id`` on every case; print
    which cases were right and what went wrong on the first that was not; return
    whether all were right. ``time_limit``: seconds per case (``None``: no limit).

    Raises only for an unknown ``exercise_id``: whatever ``fn`` does is reported.
    """
    if exercise_id not in EXERCISES:
        raise ValueError(
            f"unknown exercise_id {exercise_id!r}; known: {', '.join(sorted(EXERCISES))}"
        )
    exercise = EXERCISES[exercise_id]
    say = print if verbose else (lambda *a, **k: None)
    if not callable(fn):
        say(
            f"✗ {exercise_id}: pass the function itself, {exercise.signature}; "
            f"got {_describe(fn)}"
        )
        RESULTS[exercise_id] = "failed"
        return False
    calls = library_calls(fn, exercise.stands_for)
    if calls:
        say(
            f"✗ {exercise_id}: your function calls {', '.join(calls)}, which does the "
            "whole exercise. The exercise is to write it yourself, from the building "
            "blocks the chapter shows."
        )
        RESULTS[exercise_id] = "failed"
        return False
    with _own_random_state():
        outcomes = [_run_case(exercise, c, fn, time_limit) for c in exercise.cases]
    total = len(outcomes)
    if all(o.stub for o in outcomes):
        say(f"· {exercise_id}: {NOT_ATTEMPTED} (fill in the function, run again).")
        RESULTS[exercise_id] = NOT_ATTEMPTED
        return False
    right = sum(o.right for o in outcomes)
    if right == total:
        say(f"✓ {exercise_id}: correct on all {total} cases.")
        RESULTS[exercise_id] = "passed"
        return True
    RESULTS[exercise_id] = "failed"
    lines = [f"✗ {exercise_id}: {right} of {total} cases right."]
    with _own_random_state():
        diagnosis = _likely_mistake(exercise, outcomes)
    if diagnosis:
        lines.append(f"  Likely mistake: {diagnosis}")
    for number, (case, outcome) in enumerate(zip(exercise.cases, outcomes), start=1):
        if not outcome.right:
            lines.append(f"  Case {number} ({case.description}):")
            lines += [f"    {line}" for line in outcome.lines]
            break  # the first wrong case; fix it and run again
    wrong = [str(n) for n, o in enumerate(outcomes, start=1) if not o.right]
    if len(wrong) > 1:
        lines.append(f"  Also wrong: case {', '.join(wrong[1:])}.")
    say("\n".join(lines))
    return False
