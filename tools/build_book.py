"""Execute every notebook once, then build the HTML book from that execution.

    python -m tools.build_book [notebook stems ...]

1. Copy the book (``_config.yml``, ``_toc.yml``, ``references.bib``, ``book/``) to
   ``_book/exec/``, with execution switched off in the copy's ``_config.yml``.
2. Execute the copied notebooks one after another with nbmake (``pytest --nbmake
   --overwrite``): each notebook is a test, a failing cell fails the build, and the
   outputs are written into the copy. Headline numbers go to ``COURSE_RESULTS_DIR``
   (default ``_book/results``); the profile is ``COURSE_PROFILE`` (default quick).
3. When every notebook was executed, run the multi-head attention benchmark
   (``benchmarks/mha_vs_torch.py``) into the results folder; then write the copy's
   ``book/results.md`` from the results folder (``tools/results_page.py``).
4. Build the copy with ``jupyter-book build -W -n --keep-going`` (warnings are errors)
   into ``_book/html``.

Giving notebook stems (e.g. ``01_attention_pooling``) executes only those; the others
are rendered without outputs. The exit status is non-zero if any step fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tools import results_page

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_book"  # not "_build": nbmake skips any path with a "_build" part
COPY = BUILD / "exec"
HTML = BUILD / "html"
COPIED = ["_config.yml", "_toc.yml", "references.bib", "book", "_ext"]


def prepare_copy() -> None:
    if COPY.exists():
        shutil.rmtree(COPY)
    COPY.mkdir(parents=True)
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(
                src,
                COPY / name,
                ignore=shutil.ignore_patterns(
                    ".ipynb_checkpoints", "__pycache__", "_build"
                ),
            )
        elif src.exists():
            shutil.copy2(src, COPY / name)
    config = yaml.safe_load((COPY / "_config.yml").read_text())
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    (COPY / "_config.yml").write_text(
        yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    )


def results_dir() -> Path:
    """COURSE_RESULTS_DIR, or _book/results."""
    return Path(os.environ.get("COURSE_RESULTS_DIR", BUILD / "results"))


def unknown_stems(stems: list[str]) -> list[str]:
    """The given names that are not notebooks of book/ (checked before anything is deleted)."""
    known = {p.stem for p in (ROOT / "book").glob("*.ipynb")}
    return sorted(set(stems) - known)


def execute(stems: list[str]) -> int:
    notebooks = sorted((COPY / "book").glob("*.ipynb"))
    if stems:
        notebooks = [p for p in notebooks if p.stem in stems]
    if not notebooks:
        return 0
    env = dict(os.environ)
    env.setdefault("COURSE_PROFILE", "quick")
    env["COURSE_RESULTS_DIR"] = str(results_dir())
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--nbmake",
        "--overwrite",
        "--nbmake-timeout=1200",
        "-p",
        "no:cacheprovider",
        "--durations=0",
        "-o",
        "addopts=",
        *[str(p.relative_to(ROOT)) for p in notebooks],
    ]
    print("$", " ".join(command), flush=True)
    return subprocess.call(command, cwd=ROOT, env=env)


def _as_terminal_shows_it(text: str) -> str:
    """Apply carriage returns: of each line, keep what follows its last ``\\r``."""
    lines = text.replace("\r\n", "\n").split("\n")
    return "\n".join(line.rsplit("\r", 1)[-1] for line in lines)


def tidy_streams() -> None:
    """Merge consecutive outputs of the same stream and keep only the final state of
    lines rewritten with ``\\r`` (progress bars), as a terminal or Jupyter shows them."""
    for path in (COPY / "book").glob("*.ipynb"):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            merged: list[dict] = []
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream":
                    text = output["text"]
                    text = "".join(text) if isinstance(text, list) else text
                    if (
                        merged
                        and merged[-1].get("output_type") == "stream"
                        and merged[-1]["name"] == output["name"]
                    ):
                        merged[-1]["text"] += text
                        continue
                    output = {**output, "text": text}
                merged.append(output)
            for output in merged:
                if output.get("output_type") == "stream":
                    output["text"] = _as_terminal_shows_it(output["text"])
            if "outputs" in cell:
                cell["outputs"] = merged
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def run_benchmark() -> int:
    results_dir().mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "mha_vs_torch.py"),
        "--json",
        str(results_dir() / results_page.BENCHMARK),
        "--rounds",
        "5",
    ]
    print("$", " ".join(command), flush=True)
    return subprocess.call(command, cwd=ROOT)


def write_results_page() -> None:
    (COPY / "book" / "results.md").write_text(results_page.render(results_dir()))


def build_html() -> int:
    if HTML.exists():
        shutil.rmtree(HTML)
    command = [
        sys.executable,
        "-c",
        "from jupyter_book.cli.main import main; main()",
        "build",
        str(COPY.relative_to(ROOT)),
        "--path-output",
        str(COPY.relative_to(ROOT)),
        "-W",
        "-n",
        "--keep-going",
    ]
    print("$", " ".join(command), flush=True)
    status = subprocess.call(command, cwd=ROOT)
    if status == 0:
        shutil.copytree(COPY / "_build" / "html", HTML)
        print(f"The book is in {HTML.relative_to(ROOT)}/index.html")
    return status


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    unknown = unknown_stems(argv)
    if unknown:
        known = sorted(p.stem for p in (ROOT / "book").glob("*.ipynb"))
        print(f"unknown notebook(s): {unknown}; known: {known}")
        return 2
    start = time.perf_counter()
    prepare_copy()
    status = execute(argv)
    if status != 0:
        print("Executing the notebooks failed; see above.")
        return status
    tidy_streams()
    if not argv:
        status = run_benchmark()
        if status != 0:
            print("The benchmark failed; see above.")
            return status
    write_results_page()
    status = build_html()
    print(
        f"build_book: {'ok' if status == 0 else 'FAILED'} in {time.perf_counter() - start:.0f} s"
    )
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
