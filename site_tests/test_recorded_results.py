"""The quick profile's recorded headline numbers, checked after the build.

After ``python -m tools.build_book`` every chapter's record
(``_book/results/<notebook>.json``) must exist, come from the quick profile, and be on
track with the reference runs of the robustness matrix. No test asserts a time: speed is
a benchmark (``make bench``, ``tools/bench.py``), normalised by a machine-speed probe.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from course_lib import references

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


@pytest.mark.parametrize("stem", CHAPTERS)
def test_the_build_is_on_track_with_the_reference_runs(stem):
    """The reference runs behind course_lib.on_track hold the numbers of this build (if
    not, the matrix is out of date: ``python -m tools.matrix run --standard``)."""
    recorded = record(stem)["metrics"]
    for metric in references.reference_ranges()["notebooks"][stem]:
        ok, sentence = references.verdict(stem, metric, recorded[metric])
        assert ok, f"{stem}: {sentence}; re-measure: python -m tools.matrix run"
