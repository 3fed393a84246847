"""The command-line tools answer --help, refuse unknown commands, and check before they delete."""

import subprocess
import sys
from pathlib import Path

import pytest

from tools import build_book, notebooks, results_page, smoke_run, standin_data

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("tool", [build_book, notebooks, results_page, smoke_run])
def test_every_tool_answers_help(tool, capsys):
    assert tool.main(["--help"]) == 0
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
