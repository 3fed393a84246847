"""Write the book's results page from the numbers the last build recorded.

    python -m tools.results_page RESULTS_DIR OUTPUT.md

Every chapter's outcome cell calls ``course_lib.record(...)``, which writes
``RESULTS_DIR/<notebook>.json`` (metrics, profile, seed, device, machine, time).
``benchmarks/mha_vs_torch.py --json RESULTS_DIR/benchmark_mha.json`` adds the
multi-head attention benchmark. This module turns them into Markdown tables.

Full-profile numbers come from a GPU run that someone committed under ``results/full/``
(see the README: ``COURSE_PROFILE=full COURSE_RESULTS_DIR=results/full`` on a GPU, then
commit the JSON files); a chapter without one says "not measured yet".

Training times are shown normalised by the machine-speed probe timed in the same build
(``tools/bench.py``), next to their targets; what each chapter asserts comes from
``course_lib.outcomes``, and the ranges from the robustness matrix
(``course_lib/reference_runs.json``). Committed GPU checks (``results/gpu/*.md``,
``tools/gpu_check.py``) are shown as measured.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from course_lib import outcomes, quantities, references
from tools import bench, matrix

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
FULL_RESULTS = ROOT / "results" / "full"
GPU_CHECKS = ROOT / "results" / "gpu"  # gpu_check*.md, each a run of tools.gpu_check
BENCHMARK = "benchmark_mha.json"

INTRO = """\
# Results of the last build

Every chapter ends with a hidden cell that records its numbers and checks what the
chapter must achieve: if a chapter still runs but no longer learns, the build fails.
This page shows what that cell recorded when this copy of the book was built, on the
machine named below: what you can expect on a laptop CPU in the *quick* profile (on
Colab's GPU the chapters run faster; the *full* profile is bigger).

Next to each number: what the chapter asserts about it, and its range over the
**reference runs**, the robustness matrix: every chapter run over several seeds, two
sets of CPU kernels and one or two threads (`python -m tools.matrix`). A check is
asserted only if it held in every one of those runs with a margin; a comparison that
came out differently on some machine is shown in its chapter as that run's reading next
to this range.
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


def _training_time(record: dict, probe_seconds: float | None) -> str:
    seconds = record["metrics"].get("train_seconds")
    if not isinstance(seconds, (int, float)):
        return "–"
    if probe_seconds is None or record.get("profile") != "quick":
        return f"{seconds:.0f}"
    target = bench.TARGETS.get(record["notebook"])
    shown = f"{seconds:.0f} s = {seconds / probe_seconds:,.0f}"
    return shown + (f" (target {target:,})" if target else "")


def _full_profile(stem: str, full_dir: Path) -> str:
    path = Path(full_dir) / f"{stem}.json"
    if not path.exists():
        return "not measured yet"
    record = json.loads(path.read_text())
    gpu = (record.get("machine") or {}).get("gpu") or record.get("device", "?")
    return f"measured on {gpu}, {record.get('finished', '?')[:10]} (below)"


def _row(*cells: str) -> str:
    """A Markdown table row; an empty cell is written '| |'."""
    return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"


def _reference_range(stem: str, metric: str) -> str:
    """The smallest and largest value of a number over the reference runs."""
    values = [
        r["metrics"].get(metric)
        for r in references.runs_of(stem)
        if isinstance(r["metrics"].get(metric), (int, float))
        and not isinstance(r["metrics"].get(metric), bool)
    ]
    if not values:
        return ""
    low, high = _value(min(values)), _value(max(values))
    return low if low == high else f"{low} to {high}"


def asserted(stem: str, metric: str) -> str:
    """What the chapter's outcome checks assert about ``metric`` in the quick profile,
    in words: '≥ 0.9', '< test MSE, Nadaraya–Watson with h = 1', ..."""
    labels = quantities.QUANTITIES.get(stem, {})
    symbols = {">": ">", ">=": "≥", "<": "<", "<=": "≤", "==": "=", "≈": "within"}
    mirrored = {">": "<", ">=": "≤", "<": ">", "<=": "≥"}

    def name(side: str) -> str:
        base, _, index = side.partition("[")
        label = labels.get(base, (f"`{base}`",))[0]
        return f"{label} [{index}" if index else label

    said = []
    for check in outcomes.CHECKS.get(stem, []):
        if not check.applies_to("quick"):
            continue
        left_base = check.left.partition("[")[0]
        right_base = (
            check.right.partition("[")[0]
            if isinstance(check.right, str) and check.op != "=="
            else None
        )
        if check.op == "==":
            if left_base == metric:
                said.append(f"= {check.right}")
            continue
        if isinstance(check.right, dict):
            if left_base == metric:
                said.append(f"{symbols[check.op]} {check.right['quick']:g}")
            continue
        scale = f"{check.times:g} × " if check.times != 1 else ""
        shift = (
            f" {'+' if check.plus > 0 else '−'} {abs(check.plus):g}"
            if check.plus
            else ""
        )
        if check.op == "≈":
            if metric in (left_base, right_base):
                other = check.right if left_base == metric else check.left
                said.append(f"within {check.within:.3g} of {name(other)}")
        elif left_base == metric:
            index = check.left[len(left_base) :]
            said.append(
                f"{index + ' ' if index else ''}{symbols[check.op]} "
                f"{scale}{name(check.right)}{shift}"
            )
        elif right_base == metric and not scale and not shift:
            said.append(f"{mirrored[check.op]} {name(check.left)}")
    return "; ".join(said)


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
        "| Quantity | This build | Asserted (quick profile) | Reference runs |",
        "|---|---|---|---|",
    ]
    metrics = r["metrics"]
    for group, title in quantities.GROUPS.items():
        rows = [
            (name, value)
            for name, value in metrics.items()
            if name in known and known[name].group == group
        ]
        if rows:
            lines.append(f"| **{title}** | | | |")
        for name, value in rows:
            label = known[name].label
            lines.append(
                _row(
                    label,
                    _value(value),
                    asserted(stem, name),
                    _reference_range(stem, name),
                )
            )
    others = [(n, v) for n, v in metrics.items() if n not in known]
    if others:
        lines.append("| **Other** | | | |")
        lines += [
            _row(
                f"`{name}`",
                _value(value),
                asserted(stem, name),
                _reference_range(stem, name),
            )
            for name, value in others
        ]
    return [*lines, ""]


def robustness_section() -> list[str]:
    """Every asserted check with its smallest margin over the robustness matrix."""
    lines = [
        "## What every chapter asserts, and by how much it held",
        "",
        "Each check of the hidden outcome cells (`course_lib/outcomes.py`), evaluated on "
        "every reference run: in how many it held, its smallest margin (how far the "
        "worst run was on the right side), and a third of the spread of its margins. "
        "A check is kept only if it held everywhere with a smallest margin at least that "
        "large (`python -m tools.matrix report`).",
        "",
        "| Chapter | Check | Held | Smallest margin | Spread / 3 |",
        "|---|---|---|---|---|",
    ]
    for stem in sorted(outcomes.CHECKS):
        runs = references.runs_of(stem)
        if not runs:
            lines.append(f"| {stem} | *no reference runs yet* | | | |")
            continue
        for row in matrix.summary(stem):
            smallest, third = (
                "–" if row[k] is None else f"{row[k]:.3g}"
                for k in ("smallest", "third_of_spread")
            )
            lines.append(
                f"| {stem} | `{row['check']}` | {row['held']} of {row['runs']} | "
                f"{smallest} | {third} |"
            )
    described = references.describe_runs(
        [r for r in references.reference_runs() if r["profile"] == references.PROFILE]
    )
    return [*lines, "", f"All chapters together: {described}.", ""]


def _probe_in_words(probe: dict | None) -> str:
    if probe is None:
        return "*The machine-speed probe did not run in this build.*"
    return (
        "**Normalised training time** = training seconds / the seconds of a fixed "
        "probe workload (matrix products, a convolution, a Transformer layer; "
        f"`tools/bench.py`), timed on the same machine in the same build: "
        f"{1000 * probe['seconds']:.1f} ms here ({probe['threads']} threads, "
        f"{probe['cpu_capability']} kernels). It varies far less between machines "
        "than seconds do; the targets are the quick profile's time budgets in those "
        "units. `make bench` prints the same table."
    )


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
        probe_file = Path(results_dir) / bench.PROBE
        probe = json.loads(probe_file.read_text()) if probe_file.exists() else None
        probe_seconds = probe["seconds"] if probe else None
        lines += [
            "## Overview",
            "",
            "| Chapter | Profile | Seed | Device | Seconds, setup cell to last cell "
            "| Training: seconds = normalised (target) | Full profile on a GPU |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in records:
            link = f"[{_title(r['notebook'])}]({r['notebook']}.ipynb)"
            lines.append(
                f"| {link} | {r.get('profile', '?')} | {r.get('seed', '?')} | "
                f"{r.get('device', '?')} | {r.get('seconds_since_setup') or 0:.0f} | "
                f"{_training_time(r, probe_seconds)} | "
                f"{_full_profile(r['notebook'], full_dir)} |"
            )
        lines += [
            "",
            f"All chapters together: {total / 60:.1f} minutes (starting the kernel and "
            "importing PyTorch add a few seconds per chapter). Machine: "
            f"{_machine(records[0].get('machine', {}))}.",
            "",
            _probe_in_words(probe),
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
    lines += robustness_section()
    lines += ["## The quick profile on a GPU", ""]
    checks = sorted(Path(GPU_CHECKS).glob("gpu_check*.md"))
    for table in checks:
        title, measured = table.read_text().split("\n", 1)
        gpu = title.removeprefix("# GPU check:").strip()
        lines += [
            f"Measured on an **{gpu}** by `python -m tools.gpu_check` (committed as "
            f"`results/gpu/{table.name}`):",
            measured.replace("\n## ", "\n### "),
        ]
    if not checks:
        lines += [
            "No GPU check has been committed yet (`python -m tools.gpu_check` on a "
            "machine with CUDA, then commit `results/gpu/`).",
            "",
        ]
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
