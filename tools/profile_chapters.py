"""Where a chapter's time goes: ``python -m tools.profile_chapters [stems ...]``.

Each notebook runs in a fresh process, cell by cell (``tools.gpu_check.run_one``), in
the quick profile on this machine's CPU, in a learner's (non-strict) run. For every
chapter the table gives

- the wall time of each section (a ``##`` heading and the code cells under it);
- each training run (``train.fit``): its steps and its wall time, split into making
  the batches, the loss function (the forward pass, and any augmentation done there),
  backward, the optimizer, evaluation, and the rest (logging, the progress bar);
- the time outside every training run: evaluations, probes, plots, t-SNE.

The tables go to ``benchmarks/profile.md`` and ``benchmarks/profile.json`` with the
machine and its speed probe (``tools.bench``), so that two machines can be compared as
ratios. Run it on a quiet machine: a second PyTorch process on two cores slows both.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from tools import bench, gpu_check
from tools import notebooks as nbtools

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks"
PARTS = ("batches", "loss", "backward", "optimizer", "evaluation")


def profile(stem: str, work: Path) -> dict:
    """Run one notebook and return its sections' and training runs' seconds."""
    env = {**os.environ, "COURSE_STRICT": "0", "MPLBACKEND": "Agg"}
    for name in ("COURSE_PROFILE", "COURSE_SMOKE", "COURSE_MAX_STEPS"):
        env.pop(name, None)  # the quick profile, as a learner runs it
    report, _, error = gpu_check.run_notebook("profile", stem, env, work, None)
    if report is None or report["error"]:
        raise SystemExit(f"{stem} did not run to the end: {report and report['error']}")
    sections: dict[str, float] = {}
    for section, seconds in zip(report["sections"], report["cell_seconds"]):
        section = section or "(setup)"
        sections[section] = sections.get(section, 0.0) + seconds
    fits = []
    for cell, section in enumerate(report["sections"]):
        first = report["fits_before_cell"][cell]
        last = (
            report["fits_before_cell"][cell + 1]
            if cell + 1 < len(report["fits_before_cell"])
            else len(report["fits"])
        )
        for fit in report["fits"][first:last]:
            split = dict(fit["split"])
            split["rest"] = fit["wall_seconds"] - sum(split.values())
            fits.append(
                {
                    "section": section or "(setup)",
                    "desc": fit["desc"],
                    "steps": fit["steps"],
                    "seconds": fit["wall_seconds"],
                    "split": split,
                }
            )
    total = report["seconds"]
    return {
        "seconds": total,
        "training_seconds": sum(f["seconds"] for f in fits),
        "sections": sections,
        "fits": fits,
    }


def chapter_table(stem: str, result: dict) -> str:
    total, training = result["seconds"], result["training_seconds"]
    lines = [
        f"### {stem}: {total:.0f} s, of which {training:.0f} s in "
        f"{len(result['fits'])} training runs ({total - training:.0f} s outside them)",
        "",
        "| section | seconds | share |",
        "|---|---:|---:|",
    ]
    for section, seconds in sorted(result["sections"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {section} | {seconds:.1f} | {seconds / total:.0%} |")
    lines += [
        "",
        "| training run | section | steps | seconds | "
        + " | ".join(PARTS + ("rest",))
        + " |",
        "|---|---|---:|---:|" + "---:|" * (len(PARTS) + 1),
    ]
    for fit in sorted(result["fits"], key=lambda f: -f["seconds"]):
        shares = " | ".join(
            f"{fit['split'][part] / fit['seconds']:.0%}" if fit["seconds"] else "–"
            for part in PARTS + ("rest",)
        )
        lines.append(
            f"| {fit['desc']} | {fit['section']} | {fit['steps']} | "
            f"{fit['seconds']:.1f} | {shares} |"
        )
    return "\n".join(lines)


def write(results: dict, machine: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "profile.json").write_text(
        json.dumps({"machine": machine, "chapters": results}, indent=1) + "\n"
    )
    total = sum(r["seconds"] for r in results.values())
    header = [
        "# Where the quick profile's time goes",
        "",
        "Made by `python -m tools.profile_chapters` (do not edit by hand). Machine: "
        f"{machine['cpu']}, {machine['cpu_capability']} kernels, "
        f"{machine['threads']} threads, torch {machine['torch']}; its speed probe took "
        f"{machine['seconds'] * 1e3:.1f} ms (`tools.bench`), measured {machine['timed']}.",
        "",
        "| chapter | seconds | in training runs | outside them |",
        "|---|---:|---:|---:|",
    ]
    for stem, r in results.items():
        outside = r["seconds"] - r["training_seconds"]
        header.append(
            f"| {stem} | {r['seconds']:.0f} | {r['training_seconds']:.0f} | "
            f"{outside:.0f} ({outside / r['seconds']:.0%}) |"
        )
    header += [f"| all | {total:.0f} | | |", ""]
    body = [chapter_table(stem, r) + "\n" for stem, r in results.items()]
    (out / "profile.md").write_text("\n".join(header + body))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stems", nargs="*", help="notebooks (default: every chapter)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    every = nbtools.notebook_stems()
    unknown = sorted(set(args.stems) - set(every))
    if unknown:
        parser.error(f"unknown notebooks {unknown}; known: {every}")
    machine = bench.probe()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stem in args.stems or every:
            start = time.perf_counter()
            results[stem] = profile(stem, Path(tmp))
            print(f"{stem}: {time.perf_counter() - start:.0f} s", flush=True)
            write(results, machine, args.out)
    print(f"written to {args.out / 'profile.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
