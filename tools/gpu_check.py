"""The GPU path, checked and timed: every chapter on CUDA, then the full profile's speed.

    python -m tools.gpu_check [--device cuda] [--out DIR] [--full-steps 20]
    python -m tools.gpu_check --device cpu --steps 2       # the unit tests' CPU run

Colab's default is the quick profile on a GPU, so this runs, one after another:

1. **quick**: every notebook in the quick profile on ``--device``, and evaluates the
   chapter's outcome checks (``course_lib.outcomes``) on what it recorded;
2. **full**: every notebook in the full profile on stand-in data in the real file
   formats (``tools.standin_data``, big enough for full batches), with every training
   loop stopped after ``--full-steps`` steps, to time the full profile's steps and
   estimate how long an uncapped run takes.

It writes ``DIR/gpu_check.json`` and ``DIR/gpu_check.md`` (a table: wall time per
chapter, training steps per second, peak GPU memory, the outcome checks that failed,
the full profile's estimated time), after every notebook, so a run stopped by its time
limit (``--deadline``) keeps what it measured. The results page shows a committed
``results/gpu/gpu_check.json``.

Each notebook runs in its own process, its code cells executed in order (no Jupyter
needed: a GPU machine may have PyTorch but no notebook server). ``--steps N`` caps the
quick profile's training loops too (``COURSE_MAX_STEPS``); the outcome checks are then
not evaluated, since nothing was learned -- the unit tests run it so on the CPU, so that
the script cannot rot. The exit status is 1 if a notebook raised or a check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


# ---------------------------------------------------------------------------------------
# One notebook, in this process (run by the parent in a fresh one)


def code_cells(notebook: Path) -> list[str]:
    return [source for _, source in sections_and_code(notebook)]


def sections_and_code(notebook: Path) -> list[tuple[str, str]]:
    """(section, source) of every code cell: the section is the last ``##`` heading
    above the cell ("4.3 Masks"), or the chapter's title before the first one."""
    section, found = "", []
    for cell in json.loads(notebook.read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            for line in source.splitlines():
                if line.startswith("# ") and not section:
                    section = line[2:].strip()
                elif line.startswith("## "):
                    section = line[3:].strip()
        elif cell["cell_type"] == "code":
            found.append((section, source))
    return found


def run_one(notebook: Path, report: Path) -> int:
    """Execute the notebook's code cells in order; after every cell, write what has
    happened so far to ``report`` (so a notebook stopped at its time limit still says
    how far it got and how fast it trained)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from course_lib import train

    cells = code_cells(notebook)
    sections = [section for section, _ in sections_and_code(notebook)]
    namespace = {"__name__": "__main__"}
    start = time.perf_counter()
    cell_seconds, fits_before = [], []  # per code cell, as far as it got

    def write(done: int, error: str | None) -> None:
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
        report.write_text(
            json.dumps(
                {
                    "seconds": time.perf_counter() - start,
                    "cells_done": done,
                    "cells": len(cells),
                    "fits": train.COMPLETED,
                    "sections": sections[: len(cell_seconds)],
                    "cell_seconds": cell_seconds,
                    "fits_before_cell": fits_before,
                    "peak_memory_mb": peak,
                    "error": error,
                }
            )
        )

    for index, source in enumerate(cells):
        fits_before.append(len(train.COMPLETED))
        cell_start = time.perf_counter()
        try:
            code = compile(source, f"{notebook.stem}, code cell {index}", "exec")
            exec(code, namespace)
        except Exception:  # reported in the JSON and the exit status, not swallowed
            cell_seconds.append(time.perf_counter() - cell_start)
            write(index, traceback.format_exc(limit=4))
            return 1
        plt.close("all")
        cell_seconds.append(time.perf_counter() - cell_start)
        write(index + 1, None)
    return 0


# ---------------------------------------------------------------------------------------
# The parent: both parts, the JSON and the table


def seconds_per_step(fit: dict) -> float:
    """A typical step's seconds: the first (allocation, kernel choice) left out."""
    if fit["steps"] > 1:
        return (fit["seconds"] - fit.get("first_step_seconds", 0)) / (fit["steps"] - 1)
    return fit["seconds"]


def summarise(stem: str, report: dict, record: dict | None, part: str) -> dict:
    fits = report["fits"]
    steps = sum(f["steps"] for f in fits)
    train_seconds = sum(f["seconds"] for f in fits)
    row = {
        "seconds": round(report["seconds"], 1),
        "train_seconds": round(train_seconds, 1),
        "steps": steps,
        "steps_per_second": round(steps / train_seconds, 1) if train_seconds else None,
        "peak_memory_mb": round(report["peak_memory_mb"])
        if report["peak_memory_mb"] is not None
        else None,
        "error": report["error"],
    }
    if part == "full":
        if all(f["requested"] is not None for f in fits):
            row["estimated_uncapped_seconds"] = round(
                report["seconds"]
                + sum(
                    (f["requested"] - f["steps"]) * seconds_per_step(f)
                    for f in fits
                    if f["steps"]
                )
            )
        row["requested_steps"] = sum(f["requested"] or 0 for f in fits)
        if all(f["requested"] is not None for f in fits):
            row["estimated_training_seconds"] = round(
                sum(f["requested"] * seconds_per_step(f) for f in fits if f["steps"])
            )
        row["complete"] = report["cells_done"] == report["cells"]
    if part == "quick" and record is not None:
        row["checks"] = outcome_checks(stem, record)
    return row


def outcome_checks(stem: str, record: dict) -> dict:
    from course_lib import outcomes

    if record.get("max_steps") or record.get("smoke"):
        return {"evaluated": False}
    results = outcomes.evaluate(stem, record["metrics"], record["profile"])
    return {
        "evaluated": True,
        "total": len(results),
        "failed": [
            f"{r['shown']} ({r['left']} against {r['right']})"
            for r in results
            if not r["holds"]
        ],
    }


def run_notebook(
    part: str, stem: str, env: dict, work: Path, limit: float | None
) -> tuple[dict | None, dict | None, str]:
    """Run one notebook in a fresh process, stopped after ``limit`` seconds; return its
    report, its record (if it got that far) and the end of its error output."""
    results_dir = work / part / "results"
    report_path = work / part / f"{stem}.report.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "tools.gpu_check", "--run-one", stem]
    command += ["--report", str(report_path)]
    env = {**env, "COURSE_RESULTS_DIR": str(results_dir)}
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=limit
        )
        stderr = done.stderr
    except subprocess.TimeoutExpired:
        stderr = f"stopped at its time limit of {limit:.0f} s"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    if report is not None and report["cells_done"] < report["cells"]:
        report["error"] = report["error"] or (
            f"{stderr} after code cell {report['cells_done']} of {report['cells']}"
        )
    record_path = results_dir / f"{stem}.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else None
    return report, record, stderr


def run_part(
    part: str,
    stems: list[str],
    env: dict,
    work: Path,
    deadline: float,
    notebook_limit: float | None,
    jobs: int,
    result: dict,
    write,
) -> bool:
    """Run the notebooks of one part, ``jobs`` at a time, each with its share of the
    CPU cores; record each one's row as soon as it is done."""
    lock = threading.Lock()
    threads = env.get("GPU_CHECK_THREADS") or str(max(1, (os.cpu_count() or 2) // jobs))
    env = {**env, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}

    def one(stem: str) -> bool:
        left = deadline - time.monotonic()
        if left < 30:
            row = {"error": "skipped: the --deadline was reached"}
        else:
            limit = min(left, notebook_limit or left)
            print(f"[{part}] {stem} ...", flush=True)
            report, record, stderr = run_notebook(part, stem, env, work, limit)
            if report is None:
                row = {"error": stderr[-2000:] or "no report"}
            else:
                row = summarise(stem, report, record, part)
        with lock:
            result[part][stem] = row
            print(f"[{part}] {table_row(stem, row, part)}", flush=True)
            write()
        failed = (row.get("checks") or {}).get("failed")
        return not (row.get("error") or failed)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        oks = list(pool.map(one, stems))
    result[part] = {stem: result[part][stem] for stem in stems}  # in chapter order
    return all(oks)


def table_row(stem: str, row: dict, part: str) -> str:
    def cell(value, unit=""):
        return "–" if value is None else f"{value:,}{unit}"

    if "seconds" not in row:
        return f"| {stem} | {row['error'].splitlines()[-1][:60]} | | | | |"
    if part == "quick":
        checks = row.get("checks", {})
        if not checks.get("evaluated"):
            verdict = "not evaluated (capped)"
        elif checks["failed"]:
            verdict = (
                f"{len(checks['failed'])} of {checks['total']} failed: "
                + "; ".join(checks["failed"])
            )
        else:
            verdict = f"all {checks['total']} hold"
        last = verdict
    else:
        last = cell(row.get("estimated_uncapped_seconds"), " s")
        if row.get("estimated_training_seconds") is not None:
            last += f" ({row['estimated_training_seconds']:,} s)"
        if not row.get("complete", True) and last != "–":
            last = f"more than {last} (stopped at its time limit)"
    error = ""
    if row["error"] and "time limit" not in row["error"]:
        error = f" **raised**: {row['error'].strip().splitlines()[-1]}"
    return (
        f"| {stem} | {row['seconds']:.0f} | {row['train_seconds']:.0f} | "
        f"{cell(row['steps_per_second'])} | {cell(row['peak_memory_mb'], ' MB')} | "
        f"{last}{error} |"
    )


def markdown(result: dict) -> str:
    lines = [
        f"# GPU check: {result['device_name']}",
        "",
        f"{result['started']}, torch {result['torch']}, CUDA {result['cuda']}, "
        f"`python -m tools.gpu_check {' '.join(result['argv'])}`.",
        "",
        f"{result['jobs']} notebook(s) at a time ({result['full_jobs']} in the full "
        f"part) on {result['cpu_count']} CPU cores and one device"
        + (f", {result['threads']} CPU threads each" if result.get("threads") else "")
        + (
            ": a chapter's wall time includes waiting for the others."
            if max(result["jobs"], result["full_jobs"]) > 1
            else "."
        ),
        "",
        "## Quick profile (Colab's default), outcome checks included",
        "",
        "| chapter | wall s | training s | steps/s | peak GPU memory | outcome checks |",
        "|---|---|---|---|---|---|",
        *(table_row(s, r, "quick") for s, r in result["quick"].items()),
        "",
        f"## Full profile, {result['full_steps']} steps per training loop, stand-in "
        f"data, at most {result['full_limit']:.0f} s per chapter",
        "",
        "| chapter | wall s | training s | steps/s | peak GPU memory "
        "| estimated uncapped: all (training) |",
        "|---|---|---|---|---|---|",
        *(table_row(s, r, "full") for s, r in result["full"].items()),
        "",
        "The estimate adds, for every training loop, the steps it was asked for beyond "
        "the cap at the speed of its capped steps after the first; data preparation is "
        "measured on the stand-in data sets, smaller than the real downloads, and "
        "evaluations on the capped models. A loop given epochs of an iterable of unknown "
        "length has no estimate (–).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.gpu_check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, help="cap the quick profile's loops too")
    parser.add_argument("--full-steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "_book" / "gpu_check")
    parser.add_argument("--deadline", type=float, default=3600, help="seconds")
    parser.add_argument("--parts", nargs="+", default=["quick", "full"])
    parser.add_argument("--jobs", type=int, default=1, help="notebooks at a time")
    parser.add_argument("--full-jobs", type=int, help="the same, full part (--jobs)")
    parser.add_argument(
        "--threads", type=int, help="CPU threads per notebook (default: cores / jobs)"
    )
    parser.add_argument(
        "--full-limit",
        type=float,
        default=120,
        help="seconds per full-profile notebook",
    )
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("stems", nargs="*")
    args = parser.parse_args(argv)
    if args.run_one:
        return run_one(BOOK / f"{args.run_one}.ipynb", args.report)

    import torch

    from tools import notebooks as nbtools
    from tools import standin_data

    every = nbtools.notebook_stems()
    stems = args.stems or every
    unknown = sorted(set(stems) - set(every))
    if unknown:
        parser.error(f"unknown notebooks {unknown}; known: {every}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device here; use --device cpu to check the script")
    deadline = time.monotonic() + args.deadline
    full_jobs = args.full_jobs or args.jobs
    result = {
        "device_name": torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"CPU ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "argv": argv,
        "jobs": args.jobs,
        "threads": args.threads,
        "full_jobs": full_jobs,
        "cpu_count": os.cpu_count(),
        "full_steps": args.full_steps,
        "full_limit": args.full_limit,
        "quick": {},
        "full": {},
    }
    args.out.mkdir(parents=True, exist_ok=True)

    def write():
        (args.out / "gpu_check.json").write_text(json.dumps(result, indent=1) + "\n")
        (args.out / "gpu_check.md").write_text(markdown(result))

    base = {**os.environ, "COURSE_DEVICE": args.device, "COURSE_STRICT": "0"}
    base.update(MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    if args.threads:
        base["GPU_CHECK_THREADS"] = str(args.threads)
    for name in ("COURSE_SMOKE", "COURSE_MAX_STEPS", "COURSE_RESULTS_DIR"):
        base.pop(name, None)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "quick" in args.parts:
            env = {**base, "COURSE_PROFILE": "quick"}
            if args.steps:
                env["COURSE_MAX_STEPS"] = str(args.steps)
            # leave the full part its time: its waves of notebooks, each time-limited
            waves = -(-len(stems) // full_jobs) if "full" in args.parts else 0
            quick_deadline = deadline - waves * args.full_limit - 30 * bool(waves)
            ok &= run_part(
                "quick",
                stems,
                env,
                work,
                quick_deadline,
                None,
                args.jobs,
                result,
                write,
            )
        if "full" in args.parts:
            data = work / "data"  # big enough for the full profile's batches
            standin_data.write_fashion_mnist(data, n_train=2048, n_test=512)
            standin_data.write_cifar10(data, n_per_batch=256, n_test=512)
            env = {**base, "COURSE_PROFILE": "full", "COURSE_DATA": str(data)}
            env["COURSE_MAX_STEPS"] = str(args.full_steps)
            ok &= run_part(
                "full",
                stems,
                env,
                work,
                deadline,
                args.full_limit,
                full_jobs,
                result,
                write,
            )
    write()
    print(markdown(result))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
