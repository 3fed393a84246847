"""Measure the reference ranges behind ``course_lib.on_track``.

    python -m tools.reference_ranges [--seeds 0 1 2] [--keep DIR] [notebook stems ...]
    python -m tools.reference_ranges --from DIR [--seeds 0 1 2] [notebook stems ...]

Executes the chosen notebooks (default: all) in the quick profile once per seed
(``COURSE_SEED``), one after another, collects the headline numbers each records,
and writes their smallest and largest value to ``course_lib/reference_ranges.json``.
Notebooks not executed keep their stored ranges. The notebooks run from a copy of
``book/``, so editing the book meanwhile changes nothing. Run it on a quiet machine (about
12 minutes per seed on 2 CPU cores) after a change that moves a chapter's results,
and commit the file; ``site_tests/test_recorded_results.py`` checks that the book's
own build lands inside the ranges.

``--from DIR`` executes nothing: it reads records kept earlier (``DIR/seed-N/<stem>.json``,
as ``--keep`` writes them, or as a notebook run with ``COURSE_SEED=N`` and
``COURSE_RESULTS_DIR=DIR/seed-N`` leaves them). Each record must be a quick-profile run of
that seed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "course_lib" / "reference_ranges.json"

# notebook -> headline metric -> (label, which way is better)
HEADLINES: dict[str, dict[str, tuple[str, str]]] = {
    "01_attention_pooling": {
        "mse_parametric": ("test MSE of the learned-width Nadaraya–Watson", "lower"),
    },
    "02_scoring_functions": {
        "lookup_accuracy_dot": ("look-up accuracy, dot product", "higher"),
        "lookup_accuracy_additive_bias": (
            "look-up accuracy, additive with a bias",
            "higher",
        ),
    },
    "03_multihead_attention": {
        "neighbours_mse_two_heads": ("neighbours task MSE, two heads", "lower"),
    },
    "04_transformer": {
        "test_exact_match": ("test exact match", "higher"),
        "test_bleu": ("test BLEU", "higher"),
        "test_exact_match_hard": (
            "exact match on the hard test (kinds kept out of training)",
            "higher",
        ),
    },
    "05_vision_transformer": {
        "test_accuracy": ("ViT test accuracy", "higher"),
    },
    "06_detr": {
        "test_map50": ("test mAP@0.5", "higher"),
    },
    "07_moco": {
        "knn_accuracy_moco": ("kNN accuracy of the MoCo features", "higher"),
        "linear_probe_moco": ("linear-probe accuracy of the MoCo features", "higher"),
    },
}


def run_seed(seed: int, book: Path, stems: list[str], results: Path) -> None:
    env = {
        **os.environ,
        "COURSE_PROFILE": "quick",
        "COURSE_SEED": str(seed),
        "COURSE_RESULTS_DIR": str(results),
    }
    env.pop("COURSE_SMOKE", None)
    notebooks = [str(book / f"{stem}.ipynb") for stem in stems]
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--nbmake",
        "--nbmake-timeout=1200",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        "-q",
        *notebooks,
    ]
    print(f"seed {seed}: $ {' '.join(command)}", flush=True)
    subprocess.run(command, cwd=ROOT, env=env, check=True)


def ranges(per_seed: dict[int, Path], stems: list[str]) -> dict[str, dict]:
    out = {}
    for stem in stems:
        out[stem] = {}
        for metric, (label, better) in HEADLINES[stem].items():
            values = [
                float(
                    json.loads((folder / f"{stem}.json").read_text())["metrics"][metric]
                )
                for folder in per_seed.values()
            ]
            out[stem][metric] = {
                "label": label,
                "better": better,
                "min": min(values),
                "max": max(values),
                "values": values,
            }
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.reference_ranges",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--keep",
        type=Path,
        help="also copy every seed's recorded results (all metrics) to KEEP/seed-N/",
    )
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        help="read kept records from SOURCE/seed-N/ instead of executing",
    )
    parser.add_argument("stems", nargs="*", help="notebook stems (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.stems) - set(HEADLINES))
    if unknown:
        parser.error(f"unknown notebooks {unknown}; known: {sorted(HEADLINES)}")
    stems = args.stems or sorted(HEADLINES)
    if args.source:
        per_seed = {seed: args.source / f"seed-{seed}" for seed in args.seeds}
        problems = check_records(per_seed, stems)
        if problems:
            parser.error("; ".join(problems))
        measured = ranges(per_seed, stems)
    else:
        measured = execute_and_measure(args.seeds, stems, args.keep)
    write(measured, args.seeds)
    return 0


def check_records(per_seed: dict[int, Path], stems: list[str]) -> list[str]:
    """What is wrong with kept records: missing, another seed or profile, a smoke run."""
    problems = []
    for seed, folder in per_seed.items():
        for stem in stems:
            path = folder / f"{stem}.json"
            if not path.exists():
                problems.append(f"no record {path}")
                continue
            record = json.loads(path.read_text())
            if (record.get("seed"), record.get("profile")) != (
                seed,
                "quick",
            ) or record.get("smoke"):
                problems.append(
                    f"{path} is not a quick-profile run of seed {seed}: seed "
                    f"{record.get('seed')}, profile {record.get('profile')}"
                )
    return problems


def execute_and_measure(seeds: list[int], stems: list[str], keep: Path | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        # a copy: the book can be edited while this runs
        book = shutil.copytree(ROOT / "book", Path(tmp) / "book")
        per_seed = {seed: Path(tmp) / f"seed-{seed}" for seed in seeds}
        for seed, folder in per_seed.items():
            run_seed(seed, book, stems, folder)
        measured = ranges(per_seed, stems)
        if keep:
            for folder in per_seed.values():
                shutil.copytree(folder, keep / folder.name, dirs_exist_ok=True)
    return measured


def write(measured: dict, seeds: list[int]) -> None:
    stored = json.loads(OUTPUT.read_text()) if OUTPUT.exists() else {"notebooks": {}}
    stored["notebooks"] = {**stored.get("notebooks", {}), **measured}
    stored.update(
        profile="quick",
        seeds=seeds,
        measured_on=(
            f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__}"
        ),
        command="python -m tools.reference_ranges",
    )
    OUTPUT.write_text(json.dumps(stored, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
