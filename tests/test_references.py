"""course_lib.on_track: the learner's headline numbers against the reference runs."""

import json

import pytest

import course_lib
from course_lib import references
from tools import reference_ranges

STORED = {
    "profile": "quick",
    "seeds": [0, 1, 2],
    "notebooks": {
        "05_vision_transformer": {
            "test_accuracy": {
                "label": "ViT test accuracy",
                "better": "higher",
                "min": 0.98,
                "max": 0.99,
            }
        },
        "01_attention_pooling": {
            "mse_parametric": {"better": "lower", "min": 0.29, "max": 0.31}
        },
    },
}


@pytest.fixture
def stored(monkeypatch):
    monkeypatch.setattr(references, "reference_ranges", lambda: STORED)


def test_within_or_better_than_the_reference_runs_is_on_track(stored, capsys):
    assert course_lib.on_track("05_vision_transformer", "quick", test_accuracy=0.985)
    out = capsys.readouterr().out
    assert out.startswith("On track") and "0.98–0.99" in out
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
    assert "above the reference runs" in capsys.readouterr().out
    assert not course_lib.on_track(
        "01_attention_pooling", "quick", mse_parametric=float("nan")
    )
    assert "diverged" in capsys.readouterr().out


def test_no_reference_for_another_profile(stored, capsys):
    assert not course_lib.on_track("05_vision_transformer", "full", test_accuracy=0.9)
    assert "No reference runs exist for the full profile" in capsys.readouterr().out


def test_unknown_notebook_or_metric_is_refused(stored):
    with pytest.raises(ValueError, match="notebook must be one of"):
        course_lib.on_track("05_vit", "quick", test_accuracy=0.9)
    with pytest.raises(ValueError, match=r"headline metrics of 05.*test_accuracy"):
        course_lib.on_track("05_vision_transformer", "quick", accuracy=0.9)
    with pytest.raises(ValueError, match="headline metrics"):
        course_lib.on_track("05_vision_transformer", "quick")


def test_the_stored_file_covers_every_chapter_and_headline():
    stored = json.loads(references.REFERENCE_FILE.read_text())
    assert stored["profile"] == "quick" and stored["seeds"]
    for stem, metrics in reference_ranges.HEADLINES.items():
        assert set(stored["notebooks"][stem]) == set(metrics), stem
        for name, (label, better) in metrics.items():
            entry = stored["notebooks"][stem][name]
            assert entry["better"] == better and entry["label"] == label
            assert entry["min"] <= entry["max"]
            assert len(entry["values"]) == len(stored["seeds"])


def test_the_tool_refuses_unknown_notebooks(capsys):
    with pytest.raises(SystemExit):
        reference_ranges.main(["99_nothing"])
    assert "unknown notebooks" in capsys.readouterr().err


def _kept_record(folder, seed, value, profile="quick"):
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "notebook": "06_detr",
        "profile": profile,
        "seed": seed,
        "metrics": {"test_map50": value},
    }
    (folder / "06_detr.json").write_text(json.dumps(record))


def test_ranges_from_kept_records(tmp_path, monkeypatch):
    output = tmp_path / "ranges.json"
    output.write_text(json.dumps(STORED))
    monkeypatch.setattr(reference_ranges, "OUTPUT", output)
    for seed, value in [(0, 0.93), (1, 0.95), (2, 0.91)]:
        _kept_record(tmp_path / "kept" / f"seed-{seed}", seed, value)
    reference_ranges.main(["--from", str(tmp_path / "kept"), "06_detr"])
    written = json.loads(output.read_text())
    detr = written["notebooks"]["06_detr"]["test_map50"]
    assert (detr["min"], detr["max"], detr["values"]) == (
        0.91,
        0.95,
        [0.93, 0.95, 0.91],
    )
    # the other chapters keep their stored ranges
    assert (
        written["notebooks"]["05_vision_transformer"]
        == (STORED["notebooks"]["05_vision_transformer"])
    )


def test_kept_records_of_another_seed_or_profile_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(reference_ranges, "OUTPUT", tmp_path / "ranges.json")
    _kept_record(tmp_path / "seed-0", 0, 0.93)
    _kept_record(tmp_path / "seed-1", 0, 0.95)  # seed 0's record in seed-1/
    _kept_record(tmp_path / "seed-2", 2, 0.91, profile="full")
    with pytest.raises(SystemExit):
        reference_ranges.main(["--from", str(tmp_path), "06_detr"])
    assert not (tmp_path / "ranges.json").exists()
