"""course_lib.on_track and course_lib.references.reading: this run next to the matrix."""

import json
import math

import pytest

import course_lib
from course_lib import references


def run(notebook, seed, capability="AVX2", threads=2, profile="quick", **metrics):
    return {
        "notebook": notebook,
        "profile": profile,
        "seed": seed,
        "cpu_capability": capability,
        "threads": threads,
        "metrics": metrics,
    }


RUNS = [
    run("05_vision_transformer", 0, test_accuracy=0.98),
    run("05_vision_transformer", 1, test_accuracy=0.99),
    run("05_vision_transformer", 0, "AVX512", test_accuracy=0.985),
    run("05_vision_transformer", 0, threads=1, profile="full", test_accuracy=0.5),
    run("01_attention_pooling", 0, mse_parametric=0.29),
    run("01_attention_pooling", 1, mse_parametric=0.31),
    run("06_detr", 0, map50_a=0.60, map50_b=0.55),
    run("06_detr", 1, map50_a=0.60, map50_b=0.62),
    run("06_detr", 2, "AVX512", map50_a=0.70, map50_b=0.61),
]


@pytest.fixture
def stored(monkeypatch):
    monkeypatch.setattr(references, "reference_runs", lambda: RUNS)


def test_within_or_better_than_the_reference_runs_is_on_track(stored, capsys):
    assert course_lib.on_track("05_vision_transformer", "quick", test_accuracy=0.985)
    out = capsys.readouterr().out
    assert out.startswith("On track") and "0.98–0.99" in out
    # the reference is described by what the matrix holds (the full run left out)
    assert "3 reference runs (seeds 0–1; AVX2, AVX512 kernels; 2 threads)" in " ".join(
        out.split()
    )
    assert course_lib.on_track("05_vision_transformer", "quick", test_accuracy=0.999)
    out = capsys.readouterr().out
    assert "better than every reference run" in " ".join(out.split())  # wrapped
    assert all(len(line) <= 78 for line in out.splitlines())
    # lower is better for an error
    assert course_lib.on_track("01_attention_pooling", "quick", mse_parametric=0.2)


def test_worse_than_the_reference_runs_says_what_to_check(stored, capsys):
    # the margin is the range's width (0.01) or 5%, whichever is larger: 0.98 - 0.0495
    assert course_lib.on_track("05_vision_transformer", "quick", test_accuracy=0.931)
    capsys.readouterr()
    assert not course_lib.on_track("05_vision_transformer", "quick", test_accuracy=0.9)
    out = capsys.readouterr().out
    assert "✗ ViT test accuracy = 0.9 is below the reference runs" in out
    assert "What to check" in out and "Restart and run all" in out
    assert not course_lib.on_track("01_attention_pooling", "quick", mse_parametric=0.5)
    assert "above the reference runs" in " ".join(capsys.readouterr().out.split())
    assert not course_lib.on_track(
        "01_attention_pooling", "quick", mse_parametric=float("nan")
    )
    assert "diverged" in capsys.readouterr().out


def test_no_reference_for_another_profile(stored, capsys):
    assert not course_lib.on_track("05_vision_transformer", "full", test_accuracy=0.9)
    out = " ".join(capsys.readouterr().out.split())
    assert (
        "No reference runs exist for 05_vision_transformer in the full profile" in out
    )
    assert not course_lib.on_track(
        "02_scoring_functions", "quick", lookup_accuracy_dot=1
    )
    assert "nothing to compare with" in capsys.readouterr().out


def test_unknown_notebook_or_metric_is_refused(stored):
    with pytest.raises(ValueError, match="notebook must be one of"):
        course_lib.on_track("05_vit", "quick", test_accuracy=0.9)
    with pytest.raises(ValueError, match=r"headline metrics of 05.*test_accuracy"):
        course_lib.on_track("05_vision_transformer", "quick", accuracy=0.9)
    with pytest.raises(ValueError, match="headline metrics"):
        course_lib.on_track("05_vision_transformer", "quick")


def test_a_reading_prints_this_run_beside_the_range_of_the_matrix(stored, capsys):
    low, high = references.reading(
        "06_detr",
        "a minus b",
        0.024,
        lambda m: m["map50_a"] - m["map50_b"],
        signed=True,
    )
    assert (round(low, 6), round(high, 6)) == (-0.02, 0.09)
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("a minus b: +0.024 in this run; from -0.020 to +0.090")
    assert "over the 3 reference runs (seeds 0–2" in out
    assert out.endswith("above zero in 2 of 3.")
    references.reading("06_detr", "a", 0.6, "map50_a")
    assert "from 0.600 to 0.700" in capsys.readouterr().out
    pair = references.reading("06_detr", "a - b", 0.0, ("map50_a", "map50_b"))
    assert pair == (low, high)
    low, high = references.reading("02_scoring_functions", "x", 1.0, "x")
    assert math.isnan(low) and math.isnan(high)
    assert "x: 1.000 in this run; no reference runs yet." in capsys.readouterr().out


def test_a_reading_leaves_out_runs_that_did_not_record_its_quantity(stored, capsys):
    # a learner's run of newer code, against a matrix still partly of older code
    newer = [*RUNS, run("06_detr", 3, map50_a=0.5, map50_c=0.1)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(references, "reference_runs", lambda: newer)
        low, high = references.reading("06_detr", "c", 0.2, "map50_c")
        out = " ".join(capsys.readouterr().out.split())
        assert (low, high) == (0.1, 0.1)
        assert "over the 1 reference runs (seeds 3;" in out
        low, high = references.reading("06_detr", "a", 0.6, "map50_a")
        assert (low, high) == (0.5, 0.7)
        assert "over the 4 reference runs" in capsys.readouterr().out


def test_the_committed_matrix_covers_every_chapter_and_headline():
    stored = json.loads(references.REFERENCE_FILE.read_text())
    keys = set()
    for row in stored["runs"]:
        key = tuple(row[k] for k in ("notebook", "profile", "seed", "cpu_capability"))
        keys.add(key + (row["threads"],))
        assert set(row) >= {"torch", "metrics", "finished"}, row["notebook"]
    assert len(keys) == len(stored["runs"]), (
        "one row per notebook, seed, kernels, threads"
    )
    # one matrix, one code: the runs of a notebook all executed the same code cells
    codes: dict[str, set] = {}
    for row in stored["runs"]:
        codes.setdefault(row["notebook"], set()).add(row.get("code"))
    mixed = {stem: c for stem, c in codes.items() if len(c) != 1 or None in c}
    assert not mixed, f"runs measured on different code (or without its hash): {mixed}"
    ranges = references.reference_ranges()
    for stem, metrics in references.HEADLINES.items():
        runs = references.runs_of(stem)
        assert runs, f"no reference runs of {stem}"
        assert set(ranges["notebooks"][stem]) == set(metrics), stem
        for name in metrics:
            entry = ranges["notebooks"][stem][name]
            assert entry["min"] <= entry["max"]
            assert len(entry["values"]) == len(runs)


def test_a_runs_code_key_follows_the_code_cells_only(tmp_path):
    from tools import matrix

    cells = [
        {"cell_type": "markdown", "source": ["# prose"]},
        {"cell_type": "code", "source": ["x = 1"]},
    ]
    path = tmp_path / "01_x.ipynb"
    path.write_text(json.dumps({"cells": cells}))
    before = matrix.code_key("01_x", tmp_path)
    cells[0]["source"] = ["# other prose"]
    path.write_text(json.dumps({"cells": cells}))
    assert matrix.code_key("01_x", tmp_path) == before
    cells[1]["source"] = ["x = 2"]
    path.write_text(json.dumps({"cells": cells}))
    assert matrix.code_key("01_x", tmp_path) != before
