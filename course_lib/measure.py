"""Measuring on a CPU: fair timings and peak memory.

* :func:`compare_times` -- timing two implementations one after the other lets the
  machine's state (caches, frequency, another process) favour one of them; this
  alternates between them for several rounds and reports each one's median, with
  ``torch.utils.benchmark`` underneath.
* :func:`peak_memory` -- the most bytes held at once by the tensors a function
  creates, counted op by op (portable: no CUDA, no allocator statistics needed).
"""

from __future__ import annotations

import logging
import statistics
import weakref
from collections.abc import Callable

__all__ = ["compare_times", "peak_memory"]

# torch.utils.benchmark imports torch.utils.cpp_extension, which warns on machines
# without a CUDA toolkit; the warning is irrelevant to timing Python callables.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
import torch  # noqa: E402
from torch.utils import benchmark  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_flatten  # noqa: E402


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


class _TensorMemoryTracker(TorchDispatchMode):
    """Sees every ATen op's outputs; keeps a running total of the bytes of the storages
    they created that are still alive, and the peak of that total."""

    def __init__(self):
        super().__init__()
        self.sizes: dict[int, int] = {}    # storage address -> bytes
        self.owners: dict[int, int] = {}   # storage address -> live tensors using it
        self.tracked = weakref.WeakSet()
        self.current = self.peak = 0

    def _release(self, address: int) -> None:
        self.owners[address] -= 1
        if self.owners[address] == 0:
            self.current -= self.sizes.pop(address)
            del self.owners[address]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t in self.tracked:
                continue
            storage = t.untyped_storage()
            address = storage.data_ptr()
            if address == 0 or (address in inputs and address not in self.sizes):
                continue  # empty, or a view / in-place result of memory made before
            if address not in self.sizes:
                self.sizes[address], self.owners[address] = storage.nbytes(), 0
                self.current += storage.nbytes()
                self.peak = max(self.peak, self.current)
            self.owners[address] += 1
            self.tracked.add(t)
            weakref.finalize(t, self._release, address)
        return out


def peak_memory(fn: Callable[[], object]) -> int:
    """Peak bytes held at once by the tensors that ``fn()`` creates (run under no_grad).

    Every PyTorch op's output is counted when it is created and released when its last
    tensor is freed; inputs made before the call are not counted. Scratch memory that a
    fused C++ kernel allocates internally, without returning it as a tensor, is not seen.
    """
    if not callable(fn):
        raise TypeError("fn must be a zero-argument callable")
    tracker = _TensorMemoryTracker()
    with torch.no_grad(), tracker:
        out = fn()
        del out
    return tracker.peak
