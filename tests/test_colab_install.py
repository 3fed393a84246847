"""The Colab path: a notebook's setup cell installs course_lib from the repository.

The test runs the setup cell of a committed notebook, unchanged except that the
repository URL points at a local bare clone (``file://``) holding this commit on
branch ``main`` (and, in an edition, as the tag its setup cells install), in a fresh
virtual environment where course_lib is not importable.
Like Colab, the environment already has PyTorch and the scientific stack (it sees this
interpreter's site-packages through a path file, without this repository's editable
install), so pip installs only course_lib itself.
"""

import json
import os
import site
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

from tools import notebooks as nbt

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def local_origin(tmp_path_factory) -> Path:
    """A bare repository with this checkout's HEAD as branch main."""
    if subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True
    ).returncode:
        pytest.fail(
            f"{ROOT} is not a git checkout with a commit; the Colab path installs from git"
        )
    origin = tmp_path_factory.mktemp("origin") / "attention-hands-on.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(origin)], check=True)
    # like GitHub's, the origin's HEAD is main (pip clones it before checking out a tag)
    subprocess.run(
        ["git", "-C", str(origin), "symbolic-ref", "HEAD", "refs/heads/main"],
        check=True,
    )
    # main, and the ref the setup cells install if it is another (an edition's tag)
    _, branch = nbt.repository()
    refs = ["HEAD:refs/heads/main"]
    if branch != "main":
        refs.append(f"HEAD:refs/tags/{branch}")
    subprocess.run(
        ["git", "-C", str(ROOT), "push", "--quiet", str(origin), *refs], check=True
    )
    return origin


def fresh_environment(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True).create(path)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [
            str(python),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # this interpreter's packages (torch, numpy, ...) as on Colab; a plain path line does not
    # run the .pth files there, so the editable install of course_lib stays invisible
    shared = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    (Path(purelib) / "preinstalled.pth").write_text("\n".join(sorted(shared)) + "\n")
    return python


def run_setup_cell(python: Path, work: Path, repository: str, extra: str = ""):
    """The first notebook's setup cell, with REPOSITORY replaced, run in ``python``."""
    setup_cell = nbt.source(
        nbt.first_code_cell(nbt.load(ROOT / "book" / "01_attention_pooling.ipynb"))
    )
    url, branch = nbt.repository()
    assert (
        f'REPOSITORY = "{url}"' in setup_cell and f'BRANCH = "{branch}"' in setup_cell
    )
    cell = (
        setup_cell.replace(f'REPOSITORY = "{url}"', f'REPOSITORY = "{repository}"')
        + extra
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "COURSE_PROFILE")
    }
    env.update(COURSE_SEED="0")
    return subprocess.run(
        [str(python), "-c", cell], cwd=work, capture_output=True, text=True, env=env
    )


def test_setup_cell_installs_course_lib_from_the_repository(tmp_path, local_origin):
    python = fresh_environment(tmp_path / "venv")
    work = tmp_path / "work"  # not the repository: nothing importable by accident
    work.mkdir()
    hidden = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util, sys; "
            "sys.exit(importlib.util.find_spec('course_lib') is not None)",
        ],
        cwd=work,
    )
    assert hidden.returncode == 0, "course_lib is importable before the setup cell ran"

    run = run_setup_cell(
        python,
        work,
        f"file://{local_origin}",
        "\nimport json; print(json.dumps({'file': course_lib.__file__, 'profile': cfg.profile}))",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(result["file"]).is_relative_to(tmp_path / "venv"), result["file"]
    assert result["profile"] == "quick", "the default profile is quick, on every device"
    # setup() printed its choice of profile, seed and device
    assert "course_lib" in run.stdout


def test_setup_cell_says_what_to_do_when_the_repository_cannot_be_reached(tmp_path):
    python = fresh_environment(tmp_path / "venv")
    work = tmp_path / "work"
    work.mkdir()
    run = run_setup_cell(python, work, f"file://{tmp_path / 'no-such-repository.git'}")
    assert run.returncode != 0
    assert "CalledProcessError" not in run.stderr and "Traceback" not in run.stderr, (
        run.stderr
    )
    assert (
        "could not be installed" in run.stderr and "pip install -e ." in run.stderr
    ), run.stderr
