"""The robustness matrix: every chapter over seeds, CPU kernel sets and threads.

    python -m tools.matrix run --standard [notebook stems ...]
    python -m tools.matrix run [--seeds 0 1] [--kernels native|avx2|default] [--threads 2] [stems]
    python -m tools.matrix import DIR [--cpu-capability AVX2] [--threads 2]
    python -m tools.matrix report [notebook stems ...]

The same seed trains differently on another CPU: PyTorch (ATen), MKL and oneDNN pick
their kernels by instruction set, and sums taken in another order move a short training
run as much as a new seed does. So a chapter's outcome checks are measured not on a few
seeds on one machine but on a matrix of runs:

- ``--standard``: seeds 0-4 with this machine's own kernels and 2 threads; seeds 0-2 with
  a second kernel set (AVX2 on an AVX-512 machine, else PyTorch's ``default``, no SIMD);
  seed 0 with 1 thread.

``run`` executes the notebooks (default: all) in the quick profile, one run after another
(two PyTorch processes on two cores slow each other down many times over), from a copy of
``book/``, in a learner's (non-strict) run so that every cell runs; it then stores each
notebook's record as one row of ``course_lib/reference_runs.json`` -- seed, kernels,
threads, torch version, and every recorded metric -- replacing an earlier row of the same
notebook, seed, kernels and threads. The file is written after every run, so an
interrupted matrix keeps what it measured. About 9 minutes per run of all notebooks on 2
cores, more with ``default`` kernels.

``import`` adds records made elsewhere (a notebook run with ``COURSE_RESULTS_DIR`` set).

``report`` evaluates every check of ``course_lib.outcomes.CHECKS`` on every stored run and
prints, per check, the margin in each run, the smallest margin, a third of the spread,
and whether it passes the rule (held in every run, smallest margin >= spread / 3). It
exits with 1 if a check fails the rule.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from course_lib import outcomes, references
from tools import notebooks as nbtools

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = references.REFERENCE_FILE
STEMS = sorted(outcomes.CHECKS)

KERNELS = {  # name -> environment
    "native": {},
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
    },
    "default": {"ATEN_CPU_CAPABILITY": "default"},
}
KEY = ("notebook", "profile", "seed", "cpu_capability", "threads")


def capability(kernels: str) -> str:
    """The CPU capability PyTorch reports under a kernel set, e.g. 'AVX512'."""
    command = [
        sys.executable,
        "-c",
        "import torch; print(torch.backends.cpu.get_cpu_capability())",
    ]
    env = {**os.environ, **KERNELS[kernels]}
    return subprocess.run(
        command, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def standard_matrix() -> list[tuple[int, str, int]]:
    """(seed, kernels, threads) of the standard matrix on this machine."""
    second = "avx2" if capability("native").startswith("AVX512") else "default"
    return (
        [(seed, "native", 2) for seed in range(5)]
        + [(seed, second, 2) for seed in range(3)]
        + [(0, "native", 1)]
    )


def execute(
    seed: int,
    kernels: str,
    threads: int,
    stems: list[str],
    book: Path,
    out: Path,
    tmp: str,
) -> int:
    """Run the notebooks once, with the copy of course_lib in ``tmp/lib``; their records
    land in ``out``."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(tmp) / "lib"), str(ROOT)]),
        **KERNELS[kernels],
        "COURSE_PROFILE": "quick",
        "COURSE_SEED": str(seed),
        "COURSE_RESULTS_DIR": str(out),
        "COURSE_STRICT": "0",  # every cell runs; the checks are evaluated here
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
    for name in ("COURSE_SMOKE", "COURSE_MAX_STEPS", "COURSE_DEVICE"):
        env.pop(name, None)
    command = nbtools.nbmake_command(
        [book / f"{stem}.ipynb" for stem in stems], timeout=2400, quiet=True
    )
    print(
        f"seed {seed}, {kernels} kernels, {threads} thread(s): {len(stems)} notebooks",
        flush=True,
    )
    return subprocess.call(command, cwd=ROOT, env=env)


def code_key(stem: str, book: Path | None = None) -> str:
    """A hash of a notebook's code cells. A run measures the code it ran: rows of one
    notebook measured on different code must not be mixed in one matrix."""
    digest = hashlib.sha256()
    for source in nbtools.code_sources((book or ROOT / "book") / f"{stem}.ipynb"):
        digest.update(source.encode() + b"\0")
    return digest.hexdigest()[:12]


def row(record: dict, cpu_capability: str | None = None) -> dict:
    """One row of the matrix from a course_lib.record file."""
    machine = record.get("machine", {})
    return {
        "notebook": record["notebook"],
        "profile": record["profile"],
        "seed": record["seed"],
        "cpu_capability": cpu_capability or machine["cpu_capability"],
        "threads": machine["torch_threads"],
        "torch": machine.get("torch"),
        "cpu": machine.get("cpu"),
        "finished": record.get("finished"),
        "seconds": record.get("seconds_since_setup"),
        "metrics": record["metrics"],
    }


def load() -> list[dict]:
    return json.loads(OUTPUT.read_text())["runs"] if OUTPUT.exists() else []


def store(new_rows: list[dict]) -> None:
    """Add rows, replacing those with the same notebook, profile, seed, kernels and
    threads; write the file with one run per line (a re-measured run is one diff line)."""
    keyed = {tuple(r[k] for k in KEY): r for r in load()}
    for r in new_rows:
        keyed[tuple(r[k] for k in KEY)] = r
    rows = sorted(keyed.values(), key=lambda r: tuple(str(r[k]) for k in KEY))
    header = {
        "about": "The robustness matrix: one row per run of a notebook (python -m "
        "tools.matrix). Read by course_lib.references and tests/test_outcomes.py.",
        "updated": str(datetime.date.today()),
    }
    lines = ",\n".join(
        "  " + json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in rows
    )
    text = json.dumps(header, ensure_ascii=False, indent=1)[:-2]
    OUTPUT.write_text(f'{text},\n "runs": [\n{lines}\n ]\n}}\n')
    references.reference_runs.cache_clear()


def collect(folder: Path, cpu_capability: str | None = None) -> list[dict]:
    """Rows from every record under ``folder`` (smoke and capped runs left out)."""
    rows = []
    for path in sorted(folder.rglob("*.json")):
        record = json.loads(path.read_text())
        if not isinstance(record.get("metrics"), dict) or "notebook" not in record:
            continue
        if record.get("smoke") or record.get("max_steps"):
            continue
        rows.append(row(record, cpu_capability))
    return rows


def run(
    plan: list[tuple[int, str, int]], stems: list[str], book: Path | None = None
) -> int:
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        # copies of the book and of course_lib: both can be edited while this runs
        book = shutil.copytree(book or ROOT / "book", Path(tmp) / "book")
        shutil.copytree(
            ROOT / "course_lib",
            Path(tmp) / "lib" / "course_lib",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        for seed, kernels, threads in plan:
            out = Path(tmp) / f"seed-{seed}-{kernels}-{threads}"
            failures += execute(seed, kernels, threads, stems, book, out, tmp) != 0
            rows = collect(out, capability(kernels))
            for r in rows:  # the code this run executed: the copy made at the start
                r["code"] = code_key(r["notebook"], book)
            store(rows)
            print(f"stored {len(rows)} runs in {OUTPUT}", flush=True)
    return 1 if failures else 0


# ---------------------------------------------------------------------------------------
# The report


def margins(stem: str, runs: list[dict]) -> dict[str, dict]:
    """check key -> {"shown", "why", "margins", "holds", "missing"} over ``runs`` of
    ``stem``; a run that did not record a metric the check needs counts as missing."""
    table: dict[str, dict] = {}
    for run_ in runs:
        for check in outcomes.CHECKS[stem]:
            if not check.applies_to(run_["profile"]):
                continue
            entry = table.setdefault(
                check.key,
                {
                    "shown": check.describe(run_["profile"]),
                    "why": check.why,
                    "margins": [],
                    "holds": [],
                    "missing": 0,
                },
            )
            try:
                result = outcomes.evaluate_one(check, run_["metrics"], run_["profile"])
            except KeyError:
                entry["missing"] += 1
                continue
            entry["margins"].append(result["margin"])
            entry["holds"].append(result["holds"])
    return table


def summary(stem: str) -> list[dict]:
    """Per check of ``stem``: its formula, runs held / measured, the smallest margin, a
    third of the margins' spread, and whether it passes the rule."""
    rows = []
    for entry in margins(stem, references.runs_of(stem)).values():
        known = [m for m in entry["margins"] if m is not None]
        rows.append(
            {
                "check": entry["shown"],
                "why": entry["why"],
                "held": sum(entry["holds"]),
                "runs": len(entry["holds"]) + entry["missing"],
                "smallest": min(known) if known else None,
                "third_of_spread": (max(known) - min(known)) / 3 if known else None,
                "passes": not entry["missing"]
                and outcomes.passes_the_rule(entry["margins"], entry["holds"]),
            }
        )
    return rows


def report(stems: list[str], out=None) -> bool:
    """Print the margins of every check; True when every check passes the rule."""
    out = out or sys.stdout
    everything_passes = True
    for stem in stems:
        runs = references.runs_of(stem)
        print(f"\n{stem}: {references.describe_runs(runs)}", file=out)
        if not runs:
            everything_passes = False
            continue
        today = code_key(stem)
        other = sum(r.get("code") != today for r in runs)
        if other:
            print(
                f"  ! {other} of {len(runs)} runs were measured on other code cells of "
                "this notebook: run them again (python -m tools.matrix run ...)",
                file=out,
            )
        print(
            f"  {'check':<62} {'holds':>5} {'smallest':>9} {'spread/3':>9}  rule",
            file=out,
        )
        for row in summary(stem):
            everything_passes &= row["passes"]
            smallest, third = (
                f"{row[k]:9.3g}" if row[k] is not None else f"{'–':>9}"
                for k in ("smallest", "third_of_spread")
            )
            held = f"{row['held']}/{row['runs']}"
            print(
                f"  {row['check'][:62]:<62} {held:>5} {smallest} {third}  "
                f"{'ok' if row['passes'] else 'FAILS'}",
                file=out,
            )
    return everything_passes


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.matrix", description=__doc__.split("\n\n")[1]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="execute runs and store them")
    run_parser.add_argument("--standard", action="store_true")
    run_parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    run_parser.add_argument("--kernels", choices=sorted(KERNELS), default="native")
    run_parser.add_argument("--threads", type=int, default=2)
    run_parser.add_argument(
        "--book", type=Path, help="run the notebooks of this folder (default: book/)"
    )
    run_parser.add_argument("stems", nargs="*")
    import_parser = commands.add_parser("import", help="store records made elsewhere")
    import_parser.add_argument("folder", type=Path)
    import_parser.add_argument("--cpu-capability")
    report_parser = commands.add_parser("report", help="margins of every check")
    report_parser.add_argument("stems", nargs="*")
    args = parser.parse_args(argv)

    stems = getattr(args, "stems", None) or STEMS
    unknown = sorted(set(stems) - set(STEMS))
    if unknown:
        parser.error(f"unknown notebooks {unknown}; known: {STEMS}")
    if args.command == "run":
        plan = (
            standard_matrix()
            if args.standard
            else [(seed, args.kernels, args.threads) for seed in args.seeds]
        )
        status = run(plan, stems, args.book)
        report(stems)
        return status
    if args.command == "import":
        rows = collect(args.folder, args.cpu_capability)
        if not rows:
            parser.error(f"no course_lib.record files under {args.folder}")
        store(rows)
        print(f"stored {len(rows)} runs in {OUTPUT}")
        return 0
    return 0 if report(stems) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
