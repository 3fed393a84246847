"""The command-line tools answer --help, refuse unknown commands, and check before they delete."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools import (
    bench,
    build_book,
    gpu_check,
    matrix,
    notebooks,
    pdf,
    results_page,
    smoke_run,
    standin_data,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("tool", [build_book, notebooks, pdf, results_page, smoke_run])
def test_every_tool_answers_help(tool, capsys):
    assert tool.main(["--help"]) == 0
    assert "python -m tools." in capsys.readouterr().out


@pytest.mark.parametrize("tool", [bench, gpu_check, matrix])
def test_the_argparse_tools_answer_help(tool, capsys):
    with pytest.raises(SystemExit) as exit_:
        tool.main(["--help"])
    assert exit_.value.code == 0
    assert "python -m tools." in capsys.readouterr().out


def test_notebooks_tool_names_an_unknown_command(capsys):
    assert notebooks.main(["polish"]) == 2
    assert "unknown command polish" in capsys.readouterr().out


def test_build_book_checks_the_names_before_it_deletes_anything(
    tmp_path, monkeypatch, capsys
):
    copy = tmp_path / "exec"
    (copy / "book").mkdir(parents=True)
    (copy / "book" / "keep.txt").write_text("the last build")
    monkeypatch.setattr(build_book, "COPY", copy)
    assert build_book.main(["01_attention_pooling", "99_no_such_chapter"]) == 2
    assert "unknown notebook(s): ['99_no_such_chapter']" in capsys.readouterr().out
    assert (copy / "book" / "keep.txt").exists()


def test_standin_data_module_runs_as_a_command(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "tools.standin_data", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "cifar-10-batches-py" / "test_batch").exists()
    assert (tmp_path / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").exists()
    assert standin_data.write_cifar10(tmp_path / "again").is_dir()


# --- tools.browser: make test finds or installs Chromium ---------------------------


@pytest.fixture
def no_chromium(monkeypatch):
    """A machine without Chromium; installing one 'works' by setting CHROMIUM."""
    from tools import browser

    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    monkeypatch.setattr(browser, "playwright_chromium", lambda: None)
    monkeypatch.setattr(browser, "_fonts_missing", lambda: [])
    return browser


def test_browser_uses_a_chromium_that_is_there(no_chromium, monkeypatch):
    monkeypatch.setenv("CHROMIUM", "/opt/chromium")
    commands = []
    assert no_chromium.ensure(run=commands.append) == "/opt/chromium"
    assert commands == []


def test_browser_installs_debians_chromium_as_root(no_chromium, monkeypatch):
    monkeypatch.setattr(no_chromium, "apt_prefix", lambda: [])
    commands = []

    def run(command):
        commands.append(list(command))
        if "install" in command:
            monkeypatch.setenv("CHROMIUM", "/usr/bin/chromium")
        return 0

    assert no_chromium.ensure(run=run) == "/usr/bin/chromium"
    assert commands[0] == ["apt-get", "update", "-q"]
    assert commands[1][:2] == ["apt-get", "install"] and "chromium" in commands[1]


def test_browser_falls_back_to_playwrights_chromium(no_chromium, monkeypatch):
    monkeypatch.setattr(no_chromium, "apt_prefix", lambda: None)  # no root, no sudo
    commands = []

    def run(command):
        commands.append(list(command))
        monkeypatch.setattr(no_chromium, "playwright_chromium", lambda: "/pw/chrome")
        return 0

    assert no_chromium.ensure(run=run) == "/pw/chrome"
    assert commands == [[sys.executable, "-m", "playwright", "install", "chromium"]]


def test_browser_says_what_to_install_when_nothing_works(
    no_chromium, monkeypatch, capsys
):
    monkeypatch.setattr(no_chromium, "apt_prefix", lambda: None)
    monkeypatch.setattr(no_chromium.subprocess, "call", lambda command: 1)
    assert no_chromium.main([]) == 1
    err = capsys.readouterr().err
    assert "apt-get install chromium" in err and "playwright install chromium" in err


def _notebook(code: str, text: str = "Some prose.") -> dict:
    return {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": [text]},
            {
                "cell_type": "code",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": [code],
            },
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


@pytest.fixture
def small_book(tmp_path, monkeypatch):
    """A repository with one notebook and a one-file course_lib, for the build cache."""
    (tmp_path / "book").mkdir()
    (tmp_path / "course_lib").mkdir()
    (tmp_path / "course_lib" / "maths.py").write_text("ANSWER = 42\n")
    notebooks.save(tmp_path / "book" / "a.ipynb", _notebook("print(1)"))
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/a\nparts: []\n")
    monkeypatch.setattr(notebooks, "ROOT", tmp_path)
    monkeypatch.setattr(notebooks, "BOOK", tmp_path / "book")
    monkeypatch.setattr(build_book, "ROOT", tmp_path)
    monkeypatch.setattr(build_book, "COPY", tmp_path / "_book" / "exec")
    monkeypatch.setattr(build_book, "CACHE", tmp_path / "_book" / "cache")
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "_book" / "results"))
    for name in build_book.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _execute_as_nbmake_would(root: Path) -> None:
    """What a successful execution of a.ipynb leaves: outputs in the copy, a record."""
    executed = notebooks.load(root / "book" / "a.ipynb")
    executed["cells"][1]["outputs"] = [
        {"output_type": "stream", "name": "stdout", "text": "1\n"}
    ]
    # nbmake also leaves timings in the cell's metadata
    executed["cells"][1]["metadata"]["execution"] = {
        "iopub.execute_input": "2026-11-29T21:00:00.000000Z"
    }
    notebooks.save(build_book.COPY / "book" / "a.ipynb", executed)
    (root / "_book" / "results").mkdir(parents=True, exist_ok=True)
    (root / "_book" / "results" / "a.json").write_text("{}")
    build_book.save_to_cache(["a"])


def test_a_notebook_runs_again_only_when_its_code_or_the_library_changed(
    small_book, monkeypatch
):
    assert not build_book.cached("a")  # never executed
    build_book.place_notebooks(["a"])
    _execute_as_nbmake_would(small_book)
    assert build_book.cached("a")
    # the next build puts back exactly what the copy holds: nothing to rewrite
    executed = (build_book.COPY / "book" / "a.ipynb").read_bytes()
    assert build_book.place_notebooks([]) == []
    assert (build_book.COPY / "book" / "a.ipynb").read_bytes() == executed

    # an edited paragraph: no re-run, and the copy shows the new text with the old output
    notebooks.save(small_book / "book" / "a.ipynb", _notebook("print(1)", "New prose."))
    assert build_book.cached("a")
    assert build_book.place_notebooks([]) == []
    shown = notebooks.load(build_book.COPY / "book" / "a.ipynb")
    assert notebooks.source(shown["cells"][0]) == "New prose."
    assert shown["cells"][1]["outputs"][0]["text"] == "1\n"

    notebooks.save(small_book / "book" / "a.ipynb", _notebook("print(2)"))
    assert not build_book.cached("a"), "a code cell changed"
    notebooks.save(small_book / "book" / "a.ipynb", _notebook("print(1)"))
    assert build_book.cached("a")

    (small_book / "course_lib" / "maths.py").write_text("ANSWER = 43\n")
    assert not build_book.cached("a"), "course_lib changed"
    (small_book / "course_lib" / "maths.py").write_text("ANSWER = 42\n")
    assert build_book.cached("a")

    monkeypatch.setenv("COURSE_SEED", "1")
    assert not build_book.cached("a"), "another seed"
    monkeypatch.delenv("COURSE_SEED")
    (small_book / "_book" / "results" / "a.json").unlink()
    assert not build_book.cached("a"), "its record is gone"


def test_unchanged_files_keep_their_time_for_the_incremental_html_build(tmp_path):
    path = tmp_path / "page.md"
    assert build_book.write_if_changed(path, b"text")
    before = path.stat().st_mtime_ns
    assert not build_book.write_if_changed(path, b"text")
    assert path.stat().st_mtime_ns == before
    assert build_book.write_if_changed(path, b"new text")


def test_gpu_check_runs_a_chapter_on_the_cpu(tmp_path):
    """The GPU check cannot rot: its whole path (both parts, the report, the table) runs
    here on the CPU, capped at 2 steps, on chapter 1 (the GPU run takes every chapter)."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "tools.gpu_check", "--device", "cpu", "--steps"]
    command += ["2", "--full-steps", "2", "--out", str(out), "01_attention_pooling"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads((out / "gpu_check.json").read_text())
    quick = result["quick"]["01_attention_pooling"]
    full = result["full"]["01_attention_pooling"]
    assert quick["error"] is None and full["error"] is None
    assert quick["checks"] == {"evaluated": False}  # capped: nothing was learned
    assert quick["steps"] == 2 and full["steps"] == 2  # every loop capped
    assert full["complete"] and full["estimated_uncapped_seconds"] >= full["seconds"]
    assert full["requested_steps"] > full["steps"]
    table = (out / "gpu_check.md").read_text()
    assert table.startswith("# GPU check: CPU")
    assert "| 01_attention_pooling |" in table and "not evaluated (capped)" in table


def test_gpu_check_reports_what_a_notebook_raised(tmp_path, monkeypatch):
    book = tmp_path / "book"
    book.mkdir()
    cells = [
        {"cell_type": "code", "source": ["x = 1\n"]},
        {"cell_type": "markdown", "source": ["# words"]},
        {"cell_type": "code", "source": ["raise RuntimeError('on the GPU')"]},
    ]
    (book / "broken.ipynb").write_text(json.dumps({"cells": cells}))
    monkeypatch.setattr(gpu_check, "BOOK", book)
    report = tmp_path / "report.json"
    assert gpu_check.main(["--run-one", "broken", "--report", str(report)]) == 1
    written = json.loads(report.read_text())
    assert written["cells_done"] == 1 and written["cells"] == 2
    assert "RuntimeError: on the GPU" in written["error"]


def test_gpu_check_wants_a_gpu_unless_told_cpu(capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SystemExit):
        gpu_check.main(["--device", "cuda"])
    assert "--device cpu" in capsys.readouterr().err


def test_the_machine_probe_and_the_normalised_times(tmp_path, capsys):
    probe = tmp_path / "results" / bench.PROBE
    assert bench.main(["--probe-json", str(probe)]) == 0
    timed = json.loads(probe.read_text())
    assert timed["seconds"] == pytest.approx(sum(timed["parts"].values()))
    assert set(timed["parts"]) == {"matmul", "convolution", "transformer_layer"}
    assert timed["seconds"] > 0 and timed["threads"] >= 1
    record = {"notebook": "06_detr", "profile": "quick", "metrics": {}}
    for stem, seconds in [("06_detr", 2 * timed["seconds"] * 1000), ("04_x", 1.0)]:
        record = {**record, "notebook": stem, "metrics": {"train_seconds": seconds}}
        (tmp_path / "results" / f"{stem}.json").write_text(json.dumps(record))
    rows = {r["notebook"]: r for r in bench.normalised(tmp_path / "results")}
    assert rows["06_detr"]["normalised"] == pytest.approx(2000)
    assert rows["06_detr"]["target"] == bench.TARGETS["06_detr"]
    assert rows["04_x"]["target"] is None
    shown = bench.table(list(rows.values()))
    assert "| 06_detr |" in shown and "| 2,000 |" in shown
    assert bench.normalised(tmp_path / "nothing") == []


def test_the_table_of_contents_is_the_one_list_of_notebooks():
    from tools import notebooks

    on_disk = sorted(p.stem for p in notebooks.BOOK.glob("*.ipynb"))
    assert notebooks.notebook_stems() == on_disk  # every one, in chapter order
    assert notebooks.toc_pages()[0] == "book/00_welcome"


def test_the_profile_splits_a_chapter_by_section_and_training_run(
    tmp_path, monkeypatch
):
    from tools import gpu_check, profile_chapters

    notebook = tmp_path / "x.ipynb"
    cells = [
        {"cell_type": "code", "source": ["import course_lib"]},
        {"cell_type": "markdown", "source": ["# 9. A chapter\n", "text"]},
        {"cell_type": "markdown", "source": ["## 9.1 Data"]},
        {"cell_type": "code", "source": ["data = 1"]},
        {"cell_type": "markdown", "source": ["## 9.2 Training"]},
        {"cell_type": "code", "source": ["fit()"]},
        {"cell_type": "code", "source": ["plot()"]},
    ]
    notebook.write_text(json.dumps({"cells": cells}))
    sections = [s for s, _ in gpu_check.sections_and_code(notebook)]
    assert sections == ["", "9.1 Data", "9.2 Training", "9.2 Training"]
    split = {"batches": 1.0, "loss": 2.0, "backward": 3.0, "optimizer": 1.0}
    report = {
        "seconds": 20.0,
        "error": None,
        "sections": sections,
        "cell_seconds": [1.0, 2.0, 12.0, 5.0],
        "fits_before_cell": [0, 0, 0, 1],
        "fits": [
            {
                "desc": "main run",
                "steps": 10,
                "wall_seconds": 10.0,
                "split": {**split, "evaluation": 2.0},
            }
        ],
    }
    monkeypatch.setattr(gpu_check, "run_notebook", lambda *args: (report, None, ""))
    result = profile_chapters.profile("x", tmp_path)
    assert result["sections"] == {"(setup)": 1.0, "9.1 Data": 2.0, "9.2 Training": 17.0}
    (fit,) = result["fits"]
    assert fit["section"] == "9.2 Training" and fit["split"]["rest"] == 1.0
    table = profile_chapters.chapter_table("x", result)
    assert (
        "| main run | 9.2 Training | 10 | 10.0 | 10% | 20% | 30% | 10% | 20% | 10% |"
        in table
    )
