"""course_lib's MultiHeadAttention against torch.nn.MultiheadAttention, on this machine.

    python benchmarks/mha_vs_torch.py [--json results.json]

Forward + backward of self-attention at B=32, T=128, D=256, H=8 (no mask, and with a
key padding mask), both modules with identical weights, measured in the same run,
interleaved, median of several rounds (course_lib.measure.compare_times, which uses
torch.utils.benchmark). Prints a Markdown table; --json also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

import torch
from torch import nn

from course_lib import attention, measure

B, T, D, H = 32, 128, 256, 8


def step(module, x, **kwargs):
    """One forward + backward pass."""
    def run():
        x.grad = None
        out = module(x, x, x, **kwargs)[0]
        out.sum().backward()
    return run


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    ours = attention.MultiHeadAttention(D, H)
    theirs = nn.MultiheadAttention(D, H, batch_first=True)
    ours.load_from_torch(theirs)
    x = torch.randn(B, T, D, requires_grad=True)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=torch.Generator().manual_seed(1))
    real = attention.padding_mask(lengths, T)

    rows = []
    for case, ours_kwargs, theirs_kwargs in [
        ("no mask", {}, {"need_weights": False}),
        ("key padding mask", {"key_padding_mask": real}, {"key_padding_mask": ~real, "need_weights": False}),
    ]:
        times = measure.compare_times({"course_lib": step(ours, x, **ours_kwargs),
                                       "torch": step(theirs, x, **theirs_kwargs)},
                                      rounds=args.rounds, min_run_time=0.5)
        rows.append({"case": case, "course_lib_ms": 1e3 * times["course_lib"],
                     "torch_ms": 1e3 * times["torch"], "ratio": times["course_lib"] / times["torch"]})

    print(f"MultiHeadAttention, forward + backward, B={B}, T={T}, D={D}, H={H}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print()
    print("| case | course_lib (ms) | torch.nn.MultiheadAttention (ms) | time ratio |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['course_lib_ms']:.2f} | {r['torch_ms']:.2f} | {r['ratio']:.2f}× |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"shape": dict(B=B, T=T, D=D, H=H), "threads": torch.get_num_threads(),
                       "torch": torch.__version__, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
