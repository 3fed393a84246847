"""course_lib's MultiHeadAttention against torch.nn.MultiheadAttention, on this machine.

    python benchmarks/mha_vs_torch.py [--json results.json] [--rounds N]

Forward + backward of self-attention at B=32, T=128, D=256, H=8 (no mask, and with a
key padding mask), both modules with identical weights, measured in the same run,
interleaved, median of several rounds (``course_lib.measure.mha_vs_torch``, which
chapter 3 calls too). Prints a Markdown table; --json also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

import torch

from course_lib import measure

SHAPE = dict(B=32, T=128, D=256, H=8)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)

    rows = measure.mha_vs_torch(
        SHAPE["B"], SHAPE["T"], SHAPE["D"], SHAPE["H"], rounds=args.rounds
    )
    print(
        f"MultiHeadAttention, forward + backward, {SHAPE}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}\n"
    )
    print("| case | course_lib (ms) | torch.nn.MultiheadAttention (ms) | time ratio |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['course_lib_ms']:.2f} | {r['torch_ms']:.2f} | {r['ratio']:.2f}× |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "shape": SHAPE,
                    "threads": torch.get_num_threads(),
                    "torch": torch.__version__,
                    "rows": rows,
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
