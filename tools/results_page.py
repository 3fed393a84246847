"""Write the book's results page from the numbers the last build recorded.

    python -m tools.results_page RESULTS_DIR OUTPUT.md

Every chapter's outcome cell calls ``course_lib.record(...)``, which writes
``RESULTS_DIR/<notebook>.json`` (metrics, profile, seed, device, machine, time).
``benchmarks/mha_vs_torch.py --json RESULTS_DIR/benchmark_mha.json`` adds the
multi-head attention benchmark. This module turns them into Markdown tables.

Full-profile numbers come from a GPU run that someone committed under ``results/full/``
(see the README: ``COURSE_PROFILE=full COURSE_RESULTS_DIR=results/full`` on a GPU, then
commit the JSON files); a chapter without one says "not measured yet".

``TIME_BUDGETS`` are the quick profile's training-time budgets on CI's 2-core CPU. No
notebook asserts a time (a learner's slow laptop must not fail); ``site_tests`` checks
them from the recorded results after the build.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from tools import quantities

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
REFERENCE_RANGES = json.loads(
    (ROOT / "course_lib" / "reference_ranges.json").read_text()
)["notebooks"]
FULL_RESULTS = ROOT / "results" / "full"
BENCHMARK = "benchmark_mha.json"
# quick profile, CI's 2-core CPU: the most `train_seconds` a chapter may record
TIME_BUDGETS = {
    "04_transformer": 150,
    "05_vision_transformer": 120,
    "06_detr": 240,
    "07_moco": 180,
}

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
    parts.append(
        f"torch {machine.get('torch', '?')}, Python {machine.get('python', '?')}"
    )
    return "; ".join(parts)


def read_records(results_dir: Path) -> tuple[list[dict], list[str]]:
    """The chapters' records in ``results_dir``, and a note for each file that is not one."""
    records, problems = [], []
    for path in sorted(Path(results_dir).glob("*.json")):
        if path.name == BENCHMARK:
            continue
        try:
            record = json.loads(path.read_text())
            if (
                not isinstance(record.get("metrics"), dict)
                or record.get("notebook") != path.stem
            ):
                raise ValueError("not a course_lib.record file")
        except (OSError, ValueError) as error:
            problems.append(
                f"`{path.name}` could not be read ({error}); it is left out."
            )
            continue
        records.append(record)
    return records, problems


def _training_time(record: dict) -> str:
    seconds = record["metrics"].get("train_seconds")
    budget = TIME_BUDGETS.get(record["notebook"])
    if not isinstance(seconds, (int, float)):
        return "–"
    return f"{seconds:.0f}" + (
        f" ({budget})" if budget and record.get("profile") == "quick" else ""
    )


def _full_profile(stem: str, full_dir: Path) -> str:
    path = Path(full_dir) / f"{stem}.json"
    if not path.exists():
        return "not measured yet"
    record = json.loads(path.read_text())
    gpu = (record.get("machine") or {}).get("gpu") or record.get("device", "?")
    return f"measured on {gpu}, {record.get('finished', '?')[:10]} (below)"


def _reference_range(stem: str, metric: str) -> str:
    stored = REFERENCE_RANGES.get(stem, {}).get(metric)
    if not stored:
        return ""
    low, high = _value(stored["min"]), _value(stored["max"])
    return low if low == high else f"{low} to {high}"


def _record_section(r: dict, heading: str) -> list[str]:
    """A chapter's heading, where and how it was recorded, and its numbers: labelled and
    grouped (headline, comparisons, checks, time), each with what the chapter asserts
    about it and, for the headline, the range of the reference runs."""
    stem = r["notebook"]
    known = quantities.QUANTITIES.get(stem, {})
    lines = [
        f"{heading} {_title(stem)}",
        "",
        f"Recorded {r.get('finished', '?')}, {r.get('profile', '?')} profile, "
        f"seed {r.get('seed', '?')}, {_machine(r.get('machine', {}))}.",
        "",
        "| Quantity | This build | Asserted (quick profile) | Reference runs, seeds 0–2 |",
        "|---|---|---|---|",
    ]
    metrics = r["metrics"]
    for group, title in quantities.GROUPS.items():
        rows = [
            (name, value)
            for name, value in metrics.items()
            if name in known and known[name][1] == group
        ]
        if rows:
            lines.append(f"| **{title}** | | | |")
        for name, value in rows:
            label, _, check = known[name]
            lines.append(
                f"| {label} | {_value(value)} | {check} | "
                f"{_reference_range(stem, name)} |"
            )
    others = [(n, v) for n, v in metrics.items() if n not in known]
    if others:
        lines.append("| **Other** | | | |")
        lines += [f"| `{name}` | {_value(value)} | | |" for name, value in others]
    return [*lines, ""]


def _benchmark_in_words(row: dict) -> str:
    ours, theirs = row["course_lib_ms"], row["torch_ms"]
    if ours < theirs:
        verdict = f"ours was {1 - ours / theirs:.0%} faster"
    elif ours > theirs:
        verdict = f"PyTorch's was {1 - theirs / ours:.0%} faster"
    else:
        verdict = "they took the same time"
    return f"{row['case']}: {ours:.1f} ms against {theirs:.1f} ms, {verdict}"


def render(results_dir: Path, full_dir: Path = FULL_RESULTS) -> str:
    records, problems = read_records(Path(results_dir))
    lines = [INTRO]
    lines += [f"*{problem}*\n" for problem in problems]
    if not records:
        lines.append("*No chapter has recorded results in this build.*\n")
    else:
        total = sum(r.get("seconds_since_setup") or 0 for r in records)
        lines += [
            "## Overview",
            "",
            "| Chapter | Profile | Seed | Device | Seconds, setup cell to last cell "
            "| Training seconds (CI's budget) | Full profile on a GPU |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in records:
            link = f"[{_title(r['notebook'])}]({r['notebook']}.ipynb)"
            lines.append(
                f"| {link} | {r.get('profile', '?')} | {r.get('seed', '?')} | "
                f"{r.get('device', '?')} | {r.get('seconds_since_setup') or 0:.0f} | "
                f"{_training_time(r)} | {_full_profile(r['notebook'], full_dir)} |"
            )
        lines += [
            "",
            f"All chapters together: {total / 60:.1f} minutes (starting the kernel and "
            "importing PyTorch add a few seconds per chapter). Machine: "
            f"{_machine(records[0].get('machine', {}))}.",
            "",
        ]
        for r in records:
            lines += _record_section(r, "##")
    full, _ = read_records(full_dir) if Path(full_dir).is_dir() else ([], [])
    lines += ["## The full profile on a GPU", ""]
    if not full:
        lines += [
            "No full-profile run has been measured yet: the book quotes no full-profile "
            "number. CI runs every chapter's full-profile code for a few steps (a smoke "
            "run), so the code works; how well it learns is not known until someone runs "
            "it on a GPU and commits the results (see the README).",
            "",
        ]
    for r in full:
        lines += _record_section(r, "###")
    benchmark = Path(results_dir) / BENCHMARK
    lines += ["## Benchmark: our multi-head attention against PyTorch's", ""]
    if benchmark.exists():
        b = json.loads(benchmark.read_text())
        shape = b["shape"]
        lines += [
            f"`benchmarks/mha_vs_torch.py`: forward and backward pass, batch {shape['B']}, "
            f"length {shape['T']}, width {shape['D']}, {shape['H']} heads, "
            f"{b['threads']} threads, torch {b['torch']}. A time ratio below 1 means "
            "`course_lib.attention.MultiHeadAttention` (which calls "
            "`F.scaled_dot_product_attention`) is faster than `torch.nn.MultiheadAttention`.",
            "",
            "| Case | course_lib (ms) | torch.nn.MultiheadAttention (ms) | Time ratio |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {row['case']} | {row['course_lib_ms']:.2f} | {row['torch_ms']:.2f} | "
            f"{row['ratio']:.2f}× |"
            for row in b["rows"]
        ]
        lines += [
            "",
            "In words, in this build: "
            + "; ".join(_benchmark_in_words(row) for row in b["rows"])
            + ". Timings on a shared machine move by tens of percent from run to run.",
        ]
    else:
        lines.append("*The benchmark did not run in this build.*")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if len(argv) != 2:
        print(f"expected RESULTS_DIR OUTPUT.md; got {argv}\n{__doc__}")
        return 2
    Path(argv[1]).write_text(render(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
