"""How did your run go? Compare a chapter's headline numbers with reference runs.

The last cells of each chapter call::

    course_lib.on_track("05_vision_transformer", test_accuracy=test_accuracy)

which prints "on track" or what to check. The reference ranges are the numbers the
chapter recorded on seeds 0, 1 and 2 in the quick profile, measured by
``python -m tools.reference_ranges`` and stored in ``reference_ranges.json`` next to
this file. A number counts as on track when it is no worse than the worst reference
run by more than a margin: the width of the range, or 5% of the number, whichever is
larger. The same seed does not give the same digits everywhere: a GPU computes
differently, and chapter 6 pre-trains its backbone for a fixed number of seconds, so
its mAP@0.5 moved between 0.912 and 0.929 over runs of seed 0 on one machine. Better
than every reference run is on track too.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

from ._checks import plain_number
from ._text import fill

__all__ = ["on_track", "reference_ranges", "verdict"]

REFERENCE_FILE = Path(__file__).with_name("reference_ranges.json")


@cache
def reference_ranges() -> dict[str, Any]:
    """The stored ranges: {"profile", "seeds", "notebooks": {stem: {metric: {...}}}}."""
    return json.loads(REFERENCE_FILE.read_text())


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

    profile = profile or (_CONFIG.profile if _CONFIG is not None else "quick")
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
    if profile != stored["profile"]:
        print(
            fill(
                f"No reference runs exist for the {profile} profile yet (only for "
                f"{stored['profile']}): nothing to compare with."
            )
        )
        return False
    results = [
        verdict(notebook, name, plain_number(name, value))
        for name, value in metrics.items()
    ]
    seeds = ", ".join(str(s) for s in stored["seeds"])
    if all(ok for ok, _ in results):
        print(f"On track (reference: seeds {seeds}, {stored['profile']} profile):")
    else:
        print(f"Not where the reference runs were (seeds {seeds}):")
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
