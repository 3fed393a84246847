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

The notebooks run in ``SMOKE_JOBS`` processes at once (default: 2 on a machine with 2 or
more cores), each with its share of the cores (``OMP_NUM_THREADS``): a smoke run is
small models and tiny data, so two single-threaded notebooks finish sooner than one
after another with two threads each, and they do not fight over the same cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tools import notebooks as nbtools
from tools import standin_data

ROOT = Path(__file__).resolve().parents[1]
SMOKE = Path(os.environ.get("SMOKE_DIR", ROOT / "_book" / "smoke"))


def notebooks(args: list[str]) -> list[Path]:
    every = nbtools.notebooks()
    if not args:
        return every
    chosen = []
    for arg in args:
        path = Path(arg) if arg.endswith(".ipynb") else ROOT / "book" / f"{arg}.ipynb"
        if not path.exists():
            raise SystemExit(f"no notebook {arg!r}; known: {[p.stem for p in every]}")
        chosen.append(path.resolve())
    return chosen


def run_in_parallel(command: list[str], paths: list[Path], env: dict, jobs: int) -> int:
    """Run ``command`` on each notebook, one process per notebook and ``jobs`` at a time,
    the later (bigger) chapters first; print each one's output once it is done. Returns
    the worst exit status."""

    def run(path: Path) -> tuple[int, str]:
        done = subprocess.run(
            [*command, str(path)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        return done.returncode, done.stdout

    print(
        f"$ COURSE_PROFILE=full COURSE_SMOKE=1 OMP_NUM_THREADS={env['OMP_NUM_THREADS']}",
        " ".join(command),
        "<notebook>",
        f"({jobs} at a time)",
        flush=True,
    )
    status = 0
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for (code, output), path in zip(
            pool.map(run, sorted(paths, reverse=True)), sorted(paths, reverse=True)
        ):
            print(
                f"--- {path.name}: {'ok' if code == 0 else 'FAILED'}\n{output}",
                flush=True,
            )
            status = max(status, code)
    return status


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
    jobs = max(
        1,
        min(len(paths), int(os.environ.get("SMOKE_JOBS", min(2, os.cpu_count() or 1)))),
    )
    env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    command = nbtools.nbmake_command([], timeout=600)  # + one notebook per process
    status = run_in_parallel(command, paths, env, jobs)
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
