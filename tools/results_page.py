"""Write the book's results page from the numbers the last build recorded.

    python tools/results_page.py RESULTS_DIR OUTPUT.md

Every chapter's outcome cell calls ``course_lib.record(...)``, which writes
``RESULTS_DIR/<notebook>.json`` (metrics, profile, seed, device, machine, time).
``benchmarks/mha_vs_torch.py --json RESULTS_DIR/benchmark_mha.json`` adds the
multi-head attention benchmark. This module turns them into Markdown tables.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

BOOK = Path(__file__).resolve().parents[1] / "book"
BENCHMARK = "benchmark_mha.json"

INTRO = """\
# Results of the last build

Every chapter ends with a hidden cell that records its headline numbers and asserts
that they are good enough: if a chapter still runs but no longer learns, the build
fails. This page shows what that cell recorded when this copy of the book was built,
on the machine named below. It is what you can expect on a laptop CPU in the *quick*
profile (on Colab's GPU the chapters run faster; the *full* profile is bigger).
"""


def _title(stem: str) -> str:
    path = BOOK / f"{stem}.ipynb"
    if path.exists():
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "markdown":
                match = re.search(r"^# (.+)$", "".join(cell["source"]), re.M)
                if match:
                    return match.group(1)
    return stem


def _value(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def _machine(machine: dict) -> str:
    parts = [f"{machine.get('cpu') or 'CPU'}, {machine.get('cpu_count', '?')} cores"]
    if machine.get("gpu"):
        parts.append(f"GPU {machine['gpu']}")
    parts.append(f"torch {machine.get('torch', '?')}, Python {machine.get('python', '?')}")
    return "; ".join(parts)


def render(results_dir: Path) -> str:
    results_dir = Path(results_dir)
    records = [json.loads(p.read_text()) for p in sorted(results_dir.glob("*.json"))
               if p.name != BENCHMARK]
    lines = [INTRO]
    if not records:
        lines.append("*No chapter has recorded results in this build.*\n")
    else:
        total = sum(r.get("seconds_since_setup") or 0 for r in records)
        lines += ["## Overview", "",
                  "| Chapter | Profile | Seed | Device | Seconds, setup cell to last cell |", "|---|---|---|---|---|"]
        for r in records:
            link = f"[{_title(r['notebook'])}]({r['notebook']}.ipynb)"
            lines.append(f"| {link} | {r.get('profile', '?')} | {r.get('seed', '?')} | "
                         f"{r.get('device', '?')} | {r.get('seconds_since_setup') or 0:.0f} |")
        lines += ["", f"All chapters together: {total / 60:.1f} minutes (starting the kernel and "
                  "importing PyTorch add a few seconds per chapter). Machine: "
                  f"{_machine(records[0].get('machine', {}))}.", ""]
        for r in records:
            lines += [f"## {_title(r['notebook'])}", "",
                      f"Recorded {r.get('finished', '?')}, {r.get('profile', '?')} profile, "
                      f"seed {r.get('seed', '?')}, {_machine(r.get('machine', {}))}.", "",
                      "| Quantity | Value |", "|---|---|"]
            lines += [f"| `{name}` | {_value(value)} |" for name, value in r["metrics"].items()]
            lines.append("")
    benchmark = results_dir / BENCHMARK
    lines += ["## Benchmark: our multi-head attention against PyTorch's", ""]
    if benchmark.exists():
        b = json.loads(benchmark.read_text())
        shape = b["shape"]
        lines += [f"`benchmarks/mha_vs_torch.py`: forward and backward pass, batch {shape['B']}, "
                  f"length {shape['T']}, width {shape['D']}, {shape['H']} heads, "
                  f"{b['threads']} threads, torch {b['torch']}. A time ratio below 1 means "
                  "`course_lib.attention.MultiHeadAttention` (which calls "
                  "`F.scaled_dot_product_attention`) is faster than `torch.nn.MultiheadAttention`.",
                  "", "| Case | course_lib (ms) | torch.nn.MultiheadAttention (ms) | Time ratio |",
                  "|---|---|---|---|"]
        lines += [f"| {row['case']} | {row['course_lib_ms']:.2f} | {row['torch_ms']:.2f} | "
                  f"{row['ratio']:.2f}× |" for row in b["rows"]]
    else:
        lines.append("*The benchmark did not run in this build.*")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    Path(argv[1]).write_text(render(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
