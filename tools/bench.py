"""How fast the chapters train, as a ratio to a machine-speed probe: ``make bench``.

    python -m tools.bench                      # probe now, the MHA benchmark, the table
    python -m tools.bench --probe-json PATH    # only time the probe, into PATH (the build)

A wall-clock time says as much about the machine as about the code: the same chapter
trained 1.8 times longer on one 2-core CPU than on another. So no test asserts seconds.
Instead, every book build times a fixed **probe** workload -- small matrix products, a
convolution's forward and backward pass, and a Transformer layer's, the kinds of kernel
the chapters spend their time in -- on the same machine, just before it executes the
notebooks (``_book/results/machine_probe.json``). A chapter's **normalised training
time** is its recorded ``train_seconds`` divided by the probe's seconds: about the same
number on a fast and a slow machine, so it can be compared with a target.

``TARGETS`` are the quick profile's training-time budgets in those units: the budgets
in seconds (``SECONDS_BUDGETS``) on the 2-core CPU the book is developed on (AVX-512,
torch 2.14.1), divided by the probe's time there, 0.0074 s (three quiet probes,
0.0073-0.0076 s, 2026-12-05), rounded to two figures. The results page and this command show each
chapter's ratio beside its target; nothing fails when one is over.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import measure

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "_book" / "results"
PROBE = "machine_probe.json"

# normalised training time (train_seconds / probe seconds) each chapter should stay under
TARGETS = {
    "04_transformer": 20_000,
    "05_vision_transformer": 16_000,
    "06_detr": 32_000,
    "07_moco": 24_000,
}
SECONDS_BUDGETS = {  # what the targets were, in seconds on the development machine
    "04_transformer": 150,
    "05_vision_transformer": 120,
    "06_detr": 240,
    "07_moco": 180,
}


def probe_workloads() -> dict[str, callable]:
    """Three fixed workloads, seeded, the shapes of the quick profile's models."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 64, 64, generator=g)
    b = torch.randn(64, 64, 64, generator=g)
    conv = nn.Conv2d(32, 32, 3, padding=1)
    images = torch.randn(64, 32, 16, 16, generator=g)
    layer = nn.TransformerEncoderLayer(64, 4, 256, dropout=0.0, batch_first=True)
    tokens = torch.randn(32, 32, 64, generator=g)

    def matmul():
        return torch.bmm(a, b)

    def convolution():
        conv.zero_grad()
        F.relu(conv(images)).sum().backward()

    def transformer_layer():
        layer.zero_grad()
        layer(tokens).sum().backward()

    return {
        "matmul": matmul,
        "convolution": convolution,
        "transformer_layer": transformer_layer,
    }


def probe(rounds: int = 5) -> dict:
    """Time the probe: the sum of the workloads' median seconds per call."""
    with torch.random.fork_rng():
        medians = measure.compare_times(probe_workloads(), rounds=rounds)
    return {
        "seconds": sum(medians.values()),
        "parts": medians,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "timed": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def normalised(results_dir: Path) -> list[dict]:
    """Each chapter's training time next to the probe timed in the same build."""
    probe_path = Path(results_dir) / PROBE
    if not probe_path.exists():
        return []
    probe_seconds = json.loads(probe_path.read_text())["seconds"]
    rows = []
    for path in sorted(Path(results_dir).glob("0*.json")):
        record = json.loads(path.read_text())
        seconds = record.get("metrics", {}).get("train_seconds")
        if not isinstance(seconds, (int, float)) or record.get("profile") != "quick":
            continue
        stem = record["notebook"]
        rows.append(
            {
                "notebook": stem,
                "train_seconds": seconds,
                "probe_seconds": probe_seconds,
                "normalised": seconds / probe_seconds,
                "target": TARGETS.get(stem),
            }
        )
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| chapter | training (s) | probe (ms) | normalised | target |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        target = r["target"]
        verdict = (
            ""
            if target is None
            else f"{target:,}" + ("" if r["normalised"] <= target else " (over)")
        )
        lines.append(
            f"| {r['notebook']} | {r['train_seconds']:.0f} | "
            f"{1000 * r['probe_seconds']:.1f} | {r['normalised']:,.0f} | {verdict} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--probe-json", type=Path, help="only time the probe, into this"
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    now = probe()
    if args.probe_json:
        args.probe_json.parent.mkdir(parents=True, exist_ok=True)
        args.probe_json.write_text(json.dumps(now, indent=1) + "\n")
        print(f"machine probe: {1000 * now['seconds']:.1f} ms -> {args.probe_json}")
        return 0
    print(
        f"machine probe now: {1000 * now['seconds']:.1f} ms "
        f"({', '.join(f'{k} {1000 * v:.2f} ms' for k, v in now['parts'].items())}; "
        f"{now['threads']} threads, {now['cpu_capability']})\n"
    )
    rows = normalised(args.results)
    if rows:
        print(f"Training times of the last build ({args.results}), normalised by the")
        print("probe timed in that build (train_seconds / probe seconds):\n")
        print(table(rows) + "\n")
    else:
        print(f"No build in {args.results} to normalise: run `make book` first.\n")
    return subprocess.call(
        [sys.executable, str(ROOT / "benchmarks" / "mha_vs_torch.py"), "--rounds", "5"],
        cwd=ROOT,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
