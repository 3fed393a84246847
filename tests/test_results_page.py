"""The results page is generated from what the chapters record."""

import json
import re
from pathlib import Path

import course_lib
from course_lib import outcomes, quantities, references
from tools import bench, results_page

ROOT = Path(__file__).resolve().parents[1]


def test_results_page_shows_every_recorded_number_machine_and_benchmark(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("COURSE_PROFILE", "quick")
    course_lib.setup(seed=3, verbose=False)
    course_lib.record(
        "01_attention_pooling",
        mse_parametric=0.2981,
        train_seconds=1.25,
        sweep=[0.91388, 0.95],
    )
    (tmp_path / results_page.BENCHMARK).write_text(
        json.dumps(
            {
                "shape": {"B": 32, "T": 128, "D": 256, "H": 8},
                "threads": 2,
                "torch": "9.9",
                "rows": [
                    {
                        "case": "no mask",
                        "course_lib_ms": 12.5,
                        "torch_ms": 15.0,
                        "ratio": 12.5 / 15.0,
                    }
                ],
            }
        )
    )
    runs = [
        {
            "notebook": "01_attention_pooling",
            "profile": "quick",
            "seed": seed,
            "cpu_capability": "AVX2",
            "threads": 2,
            "metrics": {"mse_parametric": value},
        }
        for seed, value in [(0, 0.29961), (1, 0.28333), (2, 0.3528)]
    ]
    monkeypatch.setattr(references, "reference_runs", lambda: runs)
    page = results_page.render(tmp_path)
    assert (
        "[1. Attention cues and attention pooling](01_attention_pooling.ipynb)" in page
    )
    label = quantities.QUANTITIES["01_attention_pooling"]["mse_parametric"].label
    check = results_page.asserted("01_attention_pooling", "mse_parametric")
    assert "< test MSE, Nadaraya–Watson with h = 1" in check
    assert "≤ 1.1" not in check  # a reading, not asserted (tools.matrix)
    assert f"| **Headline** | | | |\n| {label} | 0.2981 | {check} | " in page
    assert "| 0.2833 to 0.3528 |" in page  # the matrix's range
    assert "| **Time and size** | | | |\n| training time (s) | 1.25 |" in page
    assert "| **Other** | | | |\n| `sweep` | [0.9139, 0.95] | | |" in page
    assert "quick profile" in page and "seed 3" in page
    assert f"{course_lib._machine()['cpu_count']} cores" in page
    assert "| no mask | 12.50 | 15.00 | 0.83× |" in page
    assert "no mask: 12.5 ms against 15.0 ms, ours was 17% faster" in page


def test_full_profile_column_says_not_measured_until_a_gpu_run_is_committed(
    tmp_path, monkeypatch
):
    quick, full = tmp_path / "quick", tmp_path / "full"
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(quick))
    monkeypatch.setenv("COURSE_PROFILE", "quick")
    course_lib.setup(seed=0, verbose=False)
    course_lib.record("04_transformer", test_exact_match=0.99, train_seconds=100.0)
    page = results_page.render(quick, full_dir=full)
    assert "| 100 | not measured yet |" in page  # no probe in this build
    assert "probe did not run in this build" in page
    assert "No full-profile run has been measured yet" in page
    (quick / "machine_probe.json").write_text(
        json.dumps({"seconds": 0.05, "threads": 2, "cpu_capability": "AVX2"})
    )
    page = results_page.render(quick, full_dir=full)
    target = bench.TARGETS["04_transformer"]
    assert f"| 100 s = 2,000 (target {target:,}) | not measured yet |" in page
    assert "50.0 ms here (2 threads, AVX2 kernels)" in page

    monkeypatch.setenv("COURSE_RESULTS_DIR", str(full))
    course_lib.setup(profile="full", seed=0, verbose=False)
    course_lib.record("04_transformer", test_exact_match=0.875, train_seconds=900.0)
    page = results_page.render(quick, full_dir=full)
    assert (
        "not measured yet" not in page
        and "| test exact match, greedy | 0.875 |" in page
    )


def test_a_corrupt_or_foreign_results_file_is_reported_not_shown(tmp_path):
    (tmp_path / "01_attention_pooling.json").write_text(
        '{"notebook": "01_attention_pooling", "metr'
    )
    (tmp_path / "02_scoring_functions.json").write_text('{"something": "else"}')
    page = results_page.render(tmp_path, full_dir=tmp_path / "none")
    assert "`01_attention_pooling.json` could not be read" in page
    assert "`02_scoring_functions.json` could not be read" in page
    assert "No chapter has recorded results" in page


def test_a_failing_record_removes_the_previous_runs_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    course_lib.setup(profile="quick", seed=0, verbose=False)
    course_lib.record("01_attention_pooling", mse_parametric=0.3)
    assert (tmp_path / "01_attention_pooling.json").exists()
    import pytest

    with pytest.raises(ValueError, match="must be finite"):
        course_lib.record("01_attention_pooling", mse_parametric=float("nan"))
    assert not (tmp_path / "01_attention_pooling.json").exists()
    assert not list(tmp_path.glob("*.partial"))


def test_results_page_says_when_nothing_ran(tmp_path):
    page = results_page.render(tmp_path)
    assert (
        "No chapter has recorded results" in page
        and "did not run in this build" in page
    )


def test_glossary_links_point_at_existing_sections():

    from myst_parser.mdit_to_docutils.base import default_slugify

    glossary = (ROOT / "book" / "glossary.md").read_text()
    links = re.findall(r"\]\(([\w.]+\.ipynb)#([\w-]+)\)", glossary)
    assert len(links) >= 20
    for notebook, anchor in links:
        cells = json.loads((ROOT / "book" / notebook).read_text())["cells"]
        headings = [
            line.lstrip("#").strip()
            for cell in cells
            if cell["cell_type"] == "markdown"
            for line in "".join(cell["source"]).splitlines()
            if line.startswith("#")
        ]
        assert anchor in {default_slugify(h) for h in headings}, (notebook, anchor)


def _hidden_cell(stem: str) -> str:
    cells = json.loads((ROOT / "book" / f"{stem}.ipynb").read_text())["cells"]
    (cell,) = [c for c in cells if "course_lib.record(" in "".join(c["source"])]
    return "".join(cell["source"])


def test_every_labelled_quantity_is_recorded_and_every_checked_one_labelled():
    for stem, table in quantities.QUANTITIES.items():
        hidden = _hidden_cell(stem)
        for metric, (_label, group, _better) in table.items():
            assert group in quantities.GROUPS, (stem, metric, group)
            assert f"{metric}=" in hidden, f"{stem} does not record {metric}"
        headline = [m for m, q in table.items() if q.group == quantities.HEADLINE]
        assert headline, f"{stem} has no headline quantity"
        for metric in headline:  # what on_track needs to judge a number
            assert table[metric].better in ("higher", "lower"), (stem, metric)
        for check in outcomes.CHECKS[stem]:
            base = check.left.partition("[")[0]
            assert base in table, f"{stem}: {base} is checked but has no label"
            assert results_page.asserted(stem, base) or not check.applies_to("quick")


def test_what_is_asserted_is_said_in_words():
    said = results_page.asserted("06_detr", "map50_at_budget_scratch")
    assert said.startswith("< mAP@0.5") and "pre-trained" in said, said
    # a reading
    assert results_page.asserted("06_detr", "map50_noobject_weight_1") == ""
    assert results_page.asserted("06_detr", "test_map50").startswith("≥ 0.9")
    assert "[0] >" in results_page.asserted("05_vision_transformer", "sweep_cnn")
    assert results_page.asserted("06_detr", "recall_by_size") == ""  # a reading
    assert results_page.asserted("06_detr", "outcome_pretrained") == "= a"
    assert results_page.asserted("06_detr", "nms_map50") == ""


def test_a_committed_gpu_check_is_shown_with_the_gpus_name(tmp_path, monkeypatch):
    (tmp_path / "gpu").mkdir()
    (tmp_path / "gpu" / "gpu_check.md").write_text(
        "# GPU check: NVIDIA Example 80GB\n\nwhen\n\n## Quick profile\n\n| a | b |\n"
    )
    monkeypatch.setattr(results_page, "GPU_CHECKS", tmp_path / "gpu")
    page = results_page.render(tmp_path)
    assert "Measured on an **NVIDIA Example 80GB**" in page
    assert "`results/gpu/gpu_check.md`" in page
    assert "\n### Quick profile\n" in page  # a level below the page's section
    monkeypatch.setattr(results_page, "GPU_CHECKS", tmp_path / "none")
    assert "No GPU check has been committed yet" in results_page.render(tmp_path)
