"""Keep the book's notebooks in shape.

    python -m tools.notebooks set-repo     # rewrite setup cells + Colab badges from _config.yml
    python -m tools.notebooks strip        # remove outputs and execution counts before committing
    python -m tools.notebooks pin REF      # an edition: install course_lib at REF (a tag, e.g. v1.0)
    python -m tools.notebooks check-pinned REF   # exit 1 unless the book is pinned to REF

The repository URL lives in one place, ``_config.yml`` (``repository.url`` and
``repository.branch``). Each notebook's first code cell (the setup cell) installs
``course_lib`` from that URL on Colab, and its first cell is a Colab badge pointing at
the notebook on that branch; ``set-repo`` regenerates both, e.g. after forking.

An **edition** pins the book to a tag: ``pin v1.0`` writes ``branch: v1.0`` into
``_config.yml`` (so the book's launch buttons open the tagged notebooks) and regenerates
the setup cells and badges, so that a notebook of edition v1.0 installs ``course_lib`` at
v1.0, the library it was tested with. The release commit is pinned, tagged, and then
``pin main`` returns ``main`` to installing ``main`` (README, "Editions").
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

SETUP_CELL = """\
# @title Setup: run me first
# "quick" runs in minutes on a laptop's CPU (and shows the book's numbers);
# "full" trains bigger models on more data and wants a GPU. The variables
# COURSE_PROFILE, COURSE_SEED and COURSE_DEVICE override the defaults.
import importlib.util
import os
import subprocess
import sys

PROFILE = "quick"  # @param ["quick", "full"]
REPOSITORY = "{url}"
BRANCH = "{branch}"
if importlib.util.find_spec("course_lib") is None:  # e.g. on Colab
    url = f"git+{{REPOSITORY}}@{{BRANCH}}"
    command = [sys.executable, "-m", "pip", "install", "--quiet", url]
    pip = subprocess.run(command, capture_output=True, text=True)
    if pip.returncode != 0:
        print(pip.stderr[-1500:])
        raise SystemExit(
            f"course_lib could not be installed from {{REPOSITORY}} (see above).\\n"
            "Offline? Clone the repository, run `pip install -e .` in it and\\n"
            "restart the kernel; on Colab, make sure the runtime has internet."
        )

import course_lib

cfg = course_lib.setup(profile=os.environ.get("COURSE_PROFILE", PROFILE))"""

BADGE_CELL = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab})"


def code_sources(notebook: Path) -> list[str]:
    """The source of each code cell of a notebook, in order: what a run of it executes
    (``build_book``'s execution cache and the matrix's code hash both read this)."""
    cells = json.loads(notebook.read_text())["cells"]
    return [source(cell) for cell in cells if cell["cell_type"] == "code"]


def repository() -> tuple[str, str]:
    """(url, branch) from _config.yml."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def colab_url(notebook: Path, url: str | None = None, branch: str | None = None) -> str:
    """The Colab address of a notebook of this repository (GitHub only)."""
    default_url, default_branch = repository()
    url, branch = url or default_url, branch or default_branch
    prefix = "https://github.com/"
    if not url.startswith(prefix):
        raise ValueError(
            f"Colab opens notebooks from GitHub; repository.url is {url!r}"
        )
    relative = notebook.resolve().relative_to(ROOT).as_posix()
    return f"https://colab.research.google.com/github/{url[len(prefix) :]}/blob/{branch}/{relative}"


def setup_cell_source(url: str | None = None, branch: str | None = None) -> str:
    default_url, default_branch = repository()
    return SETUP_CELL.format(url=url or default_url, branch=branch or default_branch)


def badge_cell_source(notebook: Path) -> str:
    return BADGE_CELL.format(colab=colab_url(notebook))


def toc_pages() -> list[str]:
    """Every page of the book ('book/<stem>'), in table-of-contents order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc["parts"]:
        pages += [entry["file"] for entry in part["chapters"]]
    return pages


def notebooks() -> list[Path]:
    """The book's notebooks in reading order. ``_toc.yml`` is the one list of them
    (tests/test_book.py checks that it names every notebook under book/)."""
    pages = (ROOT / f"{page}.ipynb" for page in toc_pages())
    return [path for path in pages if path.exists()]


def notebook_stems() -> list[str]:
    """The notebooks' names, e.g. ``01_attention_pooling``, in reading order."""
    return [path.stem for path in notebooks()]


def nbmake_command(
    paths: list[Path], *, timeout: int, overwrite: bool = False, quiet: bool = False
) -> list[str]:
    """The one command that executes notebooks: each is a pytest test (nbmake), a
    failing cell fails it, ``timeout`` seconds per cell; ``overwrite`` writes the outputs
    into the notebooks. The repository's pytest options (``addopts``) are left out."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--nbmake",
        f"--nbmake-timeout={timeout}",
    ]
    command += ["--overwrite"] if overwrite else []
    command += ["-p", "no:cacheprovider", "-o", "addopts="]
    command += ["-q"] if quiet else ["--durations=0"]
    return command + [str(p) for p in paths]


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def save(path: Path, nb: dict) -> None:
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _set_source(cell: dict, text: str) -> None:
    lines = text.splitlines(keepends=True)
    cell["source"] = lines


def first_code_cell(nb: dict) -> dict | None:
    return next((c for c in nb["cells"] if c["cell_type"] == "code"), None)


def fold_setup_cell(cell: dict) -> None:
    """The setup cell is install code: folded in the book and the PDF (``hide-input``,
    its one-line output shown) and a form in Colab (``cellView``), where the PROFILE
    field stays visible."""
    metadata = cell.setdefault("metadata", {})
    tags = metadata.setdefault("tags", [])
    if "hide-input" not in tags:
        tags.append("hide-input")
    metadata["cellView"] = "form"


def set_repo() -> int:
    changed = 0
    for path in notebooks():
        nb = load(path)
        before = json.dumps(nb)
        setup = first_code_cell(nb)
        if setup is None:
            print(f"{path.name}: no code cell; skipped")
            continue
        _set_source(setup, setup_cell_source())
        fold_setup_cell(setup)
        badge = nb["cells"][0]
        if badge["cell_type"] == "markdown" and "colab-badge" in source(badge):
            _set_source(badge, badge_cell_source(path))
        if json.dumps(nb) != before:
            save(path, nb)
            changed += 1
            print(f"updated {path.relative_to(ROOT)}")
    print(f"{changed} notebook(s) updated")
    return 0


BRANCH_LINE = re.compile(
    r"^(repository:\n(?:[ \t]+.*\n|[ \t]*#.*\n|\n)*?[ \t]+branch:[ \t]*)(\S+)(.*)$",
    re.M,
)


def set_branch(ref: str) -> None:
    """Write ``repository.branch: ref`` into _config.yml, keeping its comments."""
    if not re.fullmatch(r"[A-Za-z0-9._/-]+", ref) or ref.startswith(("-", "/")):
        raise SystemExit(f"ref must be a branch or tag name such as v1.0; got {ref!r}")
    config = ROOT / "_config.yml"
    text = config.read_text()
    new, count = BRANCH_LINE.subn(
        lambda m: m.group(1) + ref + m.group(3), text, count=1
    )
    if count != 1:
        raise SystemExit(f"{config}: no `branch:` line under `repository:`")
    config.write_text(new)


def pin(ref: str) -> int:
    set_branch(ref)
    set_repo()
    from tools import i18n  # the editions' Colab notebooks follow their English ones

    for lang in i18n.EDITIONS:
        i18n.write_notebooks(lang, ROOT)
    return check_pinned(ref)


def check_pinned(ref: str) -> int:
    """0 if _config.yml, every setup cell and every Colab badge name ``ref``."""
    problems = []
    _, branch = repository()
    if branch != ref:
        problems.append(f"_config.yml: repository.branch is {branch!r}")
    for path in notebooks():
        nb = load(path)
        setup = first_code_cell(nb)
        if setup is None or source(setup) != setup_cell_source(branch=ref):
            problems.append(f"{path.name}: the setup cell does not install {ref!r}")
        badge = source(nb["cells"][0])
        if "colab-badge" in badge and f"/blob/{ref}/" not in badge:
            problems.append(f"{path.name}: the Colab badge does not open {ref!r}")
    for problem in problems:
        print(problem)
    print(f"pinned to {ref}" if not problems else f"not pinned to {ref}")
    return 1 if problems else 0


def strip() -> int:
    for path in notebooks():
        nb = load(path)
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                cell["outputs"] = []
                cell["execution_count"] = None
        nb.get("metadata", {}).pop("widgets", None)
        save(path, nb)
    return 0


def main(argv: list[str]) -> int:
    commands = {"set-repo": set_repo, "strip": strip}
    with_ref = {"pin": pin, "check-pinned": check_pinned}
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if len(argv) == 2 and argv[0] in with_ref:
        return with_ref[argv[0]](argv[1])
    if len(argv) != 1 or argv[0] not in commands:
        print(
            f"unknown command {' '.join(argv) or '(none)'}; expected one of "
            f"{sorted(commands)} or {sorted(with_ref)} REF\n{__doc__}"
        )
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
