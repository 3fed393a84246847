"""Run every notebook's full-profile code path for a few steps: a smoke run.

    python -m tools.smoke_run [notebook stems or paths ...]

The full profile (bigger models, Fashion-MNIST and CIFAR-10, longer schedules) is
meant for a GPU and is never run in CI. To keep it from rotting, this executes the
notebooks with ``COURSE_PROFILE=full COURSE_SMOKE=1``: the same models, loaders and
plots, with every training loop stopped after ``course_lib.SMOKE_STEPS`` steps and the
small data sizes each notebook lists in ``cfg.choose(smoke=...)``. The downloads are
replaced by tiny stand-in files in the real on-disk formats (``tools.standin_data``,
pointed at by ``COURSE_DATA``), so the real loading code runs, offline.

A smoke run checks that everything runs and that every recorded number is finite
(``course_lib.record`` refuses anything else); it asserts no result. The notebooks are
not modified (nbmake without ``--overwrite``); their records go to ``_book/smoke/results``
(or ``$SMOKE_DIR/results``, with the stand-in data in ``$SMOKE_DIR/data``).
The exit status is non-zero if any notebook fails or records nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tools import standin_data

ROOT = Path(__file__).resolve().parents[1]
SMOKE = Path(os.environ.get("SMOKE_DIR", ROOT / "_book" / "smoke"))


def notebooks(args: list[str]) -> list[Path]:
    every = sorted((ROOT / "book").glob("*.ipynb"))
    if not args:
        return every
    chosen = []
    for arg in args:
        path = Path(arg) if arg.endswith(".ipynb") else ROOT / "book" / f"{arg}.ipynb"
        if not path.exists():
            raise SystemExit(f"no notebook {arg!r}; known: {[p.stem for p in every]}")
        chosen.append(path.resolve())
    return chosen


def main(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    paths = notebooks(args)
    results, data = SMOKE / "results", SMOKE / "data"
    for folder in (results, data):
        shutil.rmtree(folder, ignore_errors=True)
    standin_data.write_all(data)
    env = {
        **os.environ,
        "COURSE_PROFILE": "full",
        "COURSE_SMOKE": "1",
        "COURSE_DATA": str(data),
        "COURSE_RESULTS_DIR": str(results),
    }
    env.pop("COURSE_DEVICE", None)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--nbmake",
        "--nbmake-timeout=600",
        "-p",
        "no:cacheprovider",
        "--durations=0",
        "-o",
        "addopts=",
        *map(str, paths),
    ]
    print("$ COURSE_PROFILE=full COURSE_SMOKE=1", " ".join(command), flush=True)
    status = subprocess.call(command, cwd=ROOT, env=env)
    if status:
        print("smoke run of the full profile: FAILED (see above)")
        return status
    for path in paths:
        record = results / f"{path.stem}.json"
        if not record.exists():
            print(f"smoke run: {path.name} recorded no results")
            return 1
        written = json.loads(record.read_text())
        if written.get("profile") != "full" or not written.get("smoke"):
            print(
                f"smoke run: {path.name} did not run as a full-profile smoke run: {written}"
            )
            return 1
    print(f"smoke run of the full profile: {len(paths)} notebook(s) ran to the end")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
