"""Fair timings on a CPU: interleaved rounds, medians, torch.utils.benchmark underneath.

Timing two implementations one after the other lets the machine's state (caches,
frequency, another process) favour one of them. :func:`compare_times` alternates
between them for several rounds and reports each one's median.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable

__all__ = ["compare_times"]

# torch.utils.benchmark imports torch.utils.cpp_extension, which warns on machines
# without a CUDA toolkit; the warning is irrelevant to timing Python callables.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
import torch  # noqa: E402
from torch.utils import benchmark  # noqa: E402


def compare_times(candidates: dict[str, Callable[[], object]], rounds: int = 5,
                  min_run_time: float = 0.2) -> dict[str, float]:
    """Median seconds per call of each zero-argument callable, measured in interleaved rounds.

    Each round runs every candidate once through ``torch.utils.benchmark.Timer``
    (``blocked_autorange`` for at least ``min_run_time`` seconds); the result is the
    median over rounds.
    """
    if not candidates or not all(callable(fn) for fn in candidates.values()):
        raise TypeError("candidates must be a non-empty dict of name -> zero-argument callable")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1; got {rounds}")
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for name, fn in candidates.items():  # warm-up: first calls allocate and pick kernels
        fn()
    for _ in range(rounds):
        for name, fn in candidates.items():
            timer = benchmark.Timer(stmt="fn()", globals={"fn": fn},
                                    num_threads=torch.get_num_threads())
            samples[name].append(timer.blocked_autorange(min_run_time=min_run_time).median)
    return {name: statistics.median(values) for name, values in samples.items()}
