"""Execute every notebook once, then build the HTML book and its PDF from that execution.

    python -m tools.build_book [--force] [--no-pdf] [notebook stems ...]

1. Bring the copy of the book in ``_book/exec/`` (``_config.yml``, ``_toc.yml``,
   ``references.bib``, ``book/``) up to date, with execution switched off in the copy's
   ``_config.yml``. Only files whose content changed are written, so that the HTML build
   can be incremental.
2. Time the machine-speed probe (``tools/bench.py``), then execute the copied notebooks
   one after another with nbmake (``pytest --nbmake --overwrite``): each notebook is a
   test, a failing cell fails the build, and the outputs are written into the copy. The
   run is strict (``COURSE_STRICT=1`` unless set): a chapter's failed outcome check
   fails it. Headline numbers go to ``COURSE_RESULTS_DIR`` (default ``_book/results``);
   the profile is ``COURSE_PROFILE`` (default quick).
   **A notebook is executed again only when something its run depends on changed**
   since its last successful execution: its code cells, any file of ``course_lib``
   (the reference ranges included), or the ``COURSE_*`` variables. Otherwise its outputs
   come from ``_book/cache/`` and are put back onto the notebook's current code cells
   (so an edited paragraph shows without a re-run). ``--force`` executes every notebook
   (``make test`` does; so does a clean checkout, which has no cache).
3. When every notebook was executed or reused, run the multi-head attention benchmark
   (``benchmarks/mha_vs_torch.py``, again only if it or ``course_lib`` changed) into the
   results folder; then write the copy's ``book/results.md`` from the results folder
   (``tools/results_page.py``).
4. Build the copy with ``jupyter-book build -W -n --keep-going`` (warnings are errors)
   into ``_book/html``; Sphinx re-reads only the pages that changed.
5. Print the book to ``_book/pdf/attention-hands-on.pdf`` (``tools/pdf.py``), unless no
   page changed since the last PDF; ``--no-pdf`` skips it.

Giving notebook stems (e.g. ``01_attention_pooling``) executes only those; the others
are reused from the cache if they can be, or rendered without outputs. The exit status
is non-zero if any step fails. ``make clean`` removes ``_book`` with its cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tools import bench, i18n, pdf, results_page
from tools import notebooks as nbtools

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_book"  # not "_build": nbmake skips any path with a "_build" part
COPY = BUILD / "exec"
HTML = BUILD / "html"
CACHE = BUILD / "cache"  # <stem>.ipynb (executed) + <stem>.key (what it depended on)
COPIED = ["_config.yml", "_toc.yml", "references.bib", "book", "_ext"]
SKIPPED = {".ipynb_checkpoints", "__pycache__", "_build"}
ENVIRONMENT = (
    "COURSE_PROFILE",
    "COURSE_SEED",
    "COURSE_DEVICE",
    "COURSE_SMOKE",
    "COURSE_MAX_STEPS",
    "COURSE_STRICT",
)


def write_if_changed(path: Path, content: bytes) -> bool:
    """Write ``content`` unless the file already holds it (keeping its modification
    time, which Sphinx's incremental build goes by)."""
    if path.exists() and path.read_bytes() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return True


def _sources() -> dict[Path, Path]:
    """Relative path in the copy -> file of the repository, for everything copied except
    the notebooks and the results page, which are written by the later steps."""
    files = {}
    for name in COPIED:
        src = ROOT / name
        candidates = src.rglob("*") if src.is_dir() else [src]
        for path in candidates:
            relative = path.relative_to(ROOT)
            if not path.is_file() or SKIPPED & set(relative.parts):
                continue
            if relative.parts[0] == "book" and (
                path.suffix == ".ipynb" or path.name == "results.md"
            ):
                continue
            files[relative] = path
    return files


def prepare_copy() -> None:
    """Bring ``_book/exec`` up to date with the repository, writing changed files only."""
    sources = _sources()
    for relative, path in sources.items():
        content = path.read_bytes()
        if relative == Path("_config.yml"):
            config = yaml.safe_load(content)
            config.setdefault("execute", {})["execute_notebooks"] = "off"
            content = yaml.safe_dump(
                config, sort_keys=False, allow_unicode=True
            ).encode()
        write_if_changed(COPY / relative, content)
    notebooks = {p.name for p in nbtools.notebooks()}
    for name in COPIED:  # files deleted from the repository leave the copy too
        if not (COPY / name).is_dir():
            continue
        for path in list((COPY / name).rglob("*")):
            relative = path.relative_to(COPY)
            if not path.is_file() or SKIPPED & set(relative.parts):
                continue
            kept = relative in sources or (
                relative.parts[0] == "book"
                and (path.name in notebooks or path.name == "results.md")
            )
            if not kept:
                path.unlink()


def execution_key(notebook: Path) -> str:
    """A hash of what a notebook's run depends on: its code cells, every file of
    course_lib (the reference ranges included) and the COURSE_* variables."""
    digest = hashlib.sha256()
    for source in nbtools.code_sources(notebook):
        digest.update(source.encode() + b"\0")
    for path in sorted((ROOT / "course_lib").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    for name in ENVIRONMENT:
        digest.update(f"{name}={os.environ.get(name, '')}\0".encode())
    return digest.hexdigest()


def cached(stem: str) -> bool:
    """Has the notebook been executed successfully with everything as it is now?"""
    key, executed = CACHE / f"{stem}.key", CACHE / f"{stem}.ipynb"
    return (
        key.exists()
        and executed.exists()
        and (results_dir() / f"{stem}.json").exists()
        and key.read_text() == execution_key(ROOT / "book" / f"{stem}.ipynb")
    )


def _notebook_bytes(nb: dict) -> bytes:
    return (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode()


def with_cached_outputs(stem: str) -> dict:
    """The notebook as it is in book/, with the outputs of its cached execution (the
    code cells are the same, in the same order: that is what the key checked)."""
    nb = json.loads((ROOT / "book" / f"{stem}.ipynb").read_text())
    executed = json.loads((CACHE / f"{stem}.ipynb").read_text())
    runs = [c for c in executed["cells"] if c["cell_type"] == "code"]
    for cell, run in zip((c for c in nb["cells"] if c["cell_type"] == "code"), runs):
        cell["outputs"] = run.get("outputs", [])
        cell["execution_count"] = run.get("execution_count")
    nb["metadata"] = executed.get("metadata", nb.get("metadata", {}))
    return nb


def place_notebooks(to_run: list[str]) -> list[str]:
    """Write every notebook into the copy: as in book/ if it is to be executed, else with
    its cached outputs if it has any. Returns the stems shown without outputs."""
    without_outputs = []
    for path in nbtools.notebooks():
        if path.stem not in to_run and cached(path.stem):
            content = _notebook_bytes(with_cached_outputs(path.stem))
        else:
            content = path.read_bytes()
            if path.stem not in to_run:
                without_outputs.append(path.stem)
        write_if_changed(COPY / "book" / path.name, content)
    return without_outputs


def save_to_cache(stems: list[str]) -> None:
    """Keep each executed notebook and its key; the copy then holds exactly what a
    later build will put back (the notebook of book/ with these outputs), so that build
    rewrites nothing and Sphinx re-reads nothing."""
    CACHE.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        shutil.copy2(COPY / "book" / f"{stem}.ipynb", CACHE / f"{stem}.ipynb")
        (CACHE / f"{stem}.key").write_text(
            execution_key(ROOT / "book" / f"{stem}.ipynb")
        )
        write_if_changed(
            COPY / "book" / f"{stem}.ipynb", _notebook_bytes(with_cached_outputs(stem))
        )


def results_dir() -> Path:
    """COURSE_RESULTS_DIR, or _book/results."""
    return Path(os.environ.get("COURSE_RESULTS_DIR", BUILD / "results"))


def probe_path() -> Path:
    return results_dir() / bench.PROBE


def unknown_stems(stems: list[str]) -> list[str]:
    """The given names that are not notebooks of book/ (checked before anything is deleted)."""
    return sorted(set(stems) - set(nbtools.notebook_stems()))


def execute(stems: list[str]) -> int:
    notebooks = [COPY / "book" / f"{stem}.ipynb" for stem in sorted(stems)]
    if not notebooks:
        return 0
    env = dict(os.environ)
    env.setdefault("COURSE_PROFILE", "quick")
    env.setdefault("COURSE_STRICT", "1")  # a failed outcome check fails the build
    env["COURSE_RESULTS_DIR"] = str(results_dir())
    command = nbtools.nbmake_command(
        [p.relative_to(ROOT) for p in notebooks], timeout=1200, overwrite=True
    )
    print("$", " ".join(command), flush=True)
    return subprocess.call(command, cwd=ROOT, env=env)


def _as_terminal_shows_it(text: str) -> str:
    """Apply carriage returns: of each line, keep what follows its last ``\\r``."""
    lines = text.replace("\r\n", "\n").split("\n")
    return "\n".join(line.rsplit("\r", 1)[-1] for line in lines)


def tidy_streams(stems: list[str]) -> None:
    """Merge consecutive outputs of the same stream and keep only the final state of
    lines rewritten with ``\\r`` (progress bars), as a terminal or Jupyter shows them."""
    for path in (COPY / "book" / f"{stem}.ipynb" for stem in stems):
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


def benchmark_key() -> str:
    digest = hashlib.sha256((ROOT / "benchmarks" / "mha_vs_torch.py").read_bytes())
    for path in sorted((ROOT / "course_lib").glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run_benchmark(force: bool) -> int:
    results_dir().mkdir(parents=True, exist_ok=True)
    output, key = results_dir() / results_page.BENCHMARK, CACHE / "benchmark.key"
    if not force and output.exists() and key.exists():
        if key.read_text() == benchmark_key():
            print("benchmark: unchanged, kept", flush=True)
            return 0
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "mha_vs_torch.py"),
        "--json",
        str(results_dir() / results_page.BENCHMARK),
        "--rounds",
        "5",
    ]
    print("$", " ".join(command), flush=True)
    status = subprocess.call(command, cwd=ROOT)
    if status == 0:
        CACHE.mkdir(parents=True, exist_ok=True)
        key.write_text(benchmark_key())
    return status


def write_results_page() -> None:
    page = results_page.render(results_dir())
    write_if_changed(COPY / "book" / "results.md", page.encode())


def build_html(copy: Path = COPY, html: Path = HTML) -> int:
    """Build the book in ``copy`` (its notebooks executed) with Jupyter Book into ``html``."""
    command = [
        sys.executable,
        "-c",
        "from jupyter_book.cli.main import main; main()",
        "build",
        str(copy.relative_to(ROOT)),
        "--path-output",
        str(copy.relative_to(ROOT)),
        "-W",
        "-n",
        "--keep-going",
    ]
    print("$", " ".join(command), flush=True)
    status = subprocess.call(command, cwd=ROOT)
    if status == 0:
        if html.exists():
            shutil.rmtree(html)
        shutil.copytree(copy / "_build" / "html", html)
        print(f"The book is in {html.relative_to(ROOT)}/index.html")
    return status


def build_editions() -> int:
    """Each other edition (``tools/i18n.py``) from the executed English copy, into
    ``_book/html/<lang>``: the same code cells and outputs, its own prose; nothing runs."""
    for lang in i18n.EDITIONS:
        i18n.prepare_edition(lang, COPY, BUILD / f"exec-{lang}")
        status = build_html(BUILD / f"exec-{lang}", HTML / lang)
        if status != 0:
            return status
    return 0


def pages_key(site: Path) -> str:
    """A hash of the built pages and images the PDF is printed from (an edition's site
    inside the English one left out)."""
    digest = hashlib.sha256()
    for path in sorted(site.rglob("*")):
        relative = path.relative_to(site)
        if relative.parts[0] in i18n.EDITIONS:
            continue
        if path.is_file() and (
            path.suffix == ".html" or relative.parts[0] in ("_images", "_static")
        ):
            digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def build_pdf(force: bool) -> int:
    """The English PDF and each edition's, each printed again only if a page changed."""
    books = [(HTML, pdf.OUTPUT, CACHE / "pdf.key")] + [
        (HTML / lang, pdf.edition_output(lang), CACHE / f"pdf-{lang}.key")
        for lang in i18n.EDITIONS
    ]
    for site, output, key_file in books:
        key = pages_key(site)
        if not force and output.exists() and key_file.exists():
            if key_file.read_text() == key:
                shutil.copy2(output, site / pdf.NAME)
                print(f"PDF: no page changed, kept {output.relative_to(ROOT)}")
                continue
        status = pdf.build(site, output)
        if status != 0:
            return status
        CACHE.mkdir(parents=True, exist_ok=True)
        key_file.write_text(key)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m tools.build_book", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--force", action="store_true", help="execute every notebook, cached or not"
    )
    parser.add_argument("--no-pdf", action="store_true", help="build the HTML only")
    parser.add_argument("stems", nargs="*", help="execute only these notebooks")
    args = parser.parse_args(argv)
    unknown = unknown_stems(args.stems)
    if unknown:
        print(f"unknown notebook(s): {unknown}; known: {nbtools.notebook_stems()}")
        return 2
    start = time.perf_counter()
    every = nbtools.notebook_stems()
    if args.stems:
        to_run = sorted(args.stems)
    else:
        to_run = [s for s in every if args.force or not cached(s)]
    prepare_copy()
    without_outputs = place_notebooks(to_run)
    reused = sorted(set(every) - set(to_run) - set(without_outputs))
    print(
        f"build_book: executing {to_run or 'nothing'}; reusing the last run of "
        f"{reused or 'none'}"
        + (f"; without outputs: {without_outputs}" if without_outputs else ""),
        flush=True,
    )
    if to_run:  # the machine's speed, timed just before the runs it normalises
        status = subprocess.call(
            [sys.executable, "-m", "tools.bench", "--probe-json", str(probe_path())],
            cwd=ROOT,
        )
        if status != 0:
            print("The machine probe failed; see above.")
            return status
    status = execute(to_run)
    if status != 0:
        print("Executing the notebooks failed; see above.")
        return status
    tidy_streams(to_run)
    save_to_cache(to_run)
    if not without_outputs:
        status = run_benchmark(args.force)
        if status != 0:
            print("The benchmark failed; see above.")
            return status
    write_results_page()
    status = build_html()
    if status == 0:
        status = build_editions()
    if status == 0 and not args.no_pdf:
        status = build_pdf(args.force)
    print(
        f"build_book: {'ok' if status == 0 else 'FAILED'} in {time.perf_counter() - start:.0f} s"
    )
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
