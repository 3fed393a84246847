"""The quick profile's recorded training times and headline numbers, checked after the build.

No notebook asserts a wall-clock time: a learner's slow laptop must not fail a chapter.
CI's machine is the reference instead: after ``python -m tools.build_book`` every chapter's
record (``_book/results/<notebook>.json``) must exist, come from the quick profile, and
stay inside its training-time budget (``tools/results_page.py``'s ``TIME_BUDGETS``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from course_lib import references
from tools import results_page

ROOT = Path(__file__).resolve().parents[1]

RESULTS = Path(os.environ.get("COURSE_RESULTS_DIR", ROOT / "_book" / "results"))
CHAPTERS = sorted(p.stem for p in (ROOT / "book").glob("*.ipynb"))


def record(stem: str) -> dict:
    path = RESULTS / f"{stem}.json"
    assert path.exists(), (
        f"{stem} recorded no results in {RESULTS}; build the book first"
    )
    return json.loads(path.read_text())


@pytest.mark.parametrize("stem", CHAPTERS)
def test_every_chapter_recorded_a_quick_profile_run(stem):
    written = record(stem)
    assert written["profile"] == "quick" and not written.get("smoke"), written


@pytest.mark.parametrize("stem", sorted(results_page.TIME_BUDGETS))
def test_training_time_is_inside_its_budget(stem):
    budget = results_page.TIME_BUDGETS[stem]
    seconds = record(stem)["metrics"]["train_seconds"]
    assert seconds <= budget, (
        f"{stem} trained for {seconds:.0f} s; its budget on CI's CPU is {budget} s"
    )


@pytest.mark.parametrize("stem", CHAPTERS)
def test_the_build_is_on_track_with_the_reference_runs(stem):
    """The ranges behind course_lib.on_track hold the numbers of this build (if not,
    re-measure them: ``python -m tools.reference_ranges``)."""
    recorded = record(stem)["metrics"]
    for metric in references.reference_ranges()["notebooks"][stem]:
        ok, sentence = references.verdict(stem, metric, recorded[metric])
        assert ok, f"{stem}: {sentence}; run python -m tools.reference_ranges"
