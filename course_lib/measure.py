"""Measuring on a CPU: fair timings and peak memory.

* :func:`compare_times` -- timing two implementations one after the other lets the
  machine's state (caches, frequency, another process) favour one of them; this
  alternates between them for several rounds and reports each one's median, with
  ``torch.utils.benchmark`` underneath.
* :func:`mha_vs_torch` -- chapter 3's :class:`~course_lib.attention.MultiHeadAttention`
  against ``torch.nn.MultiheadAttention`` with the same weights, timed that way (the
  chapter and ``benchmarks/mha_vs_torch.py`` both call it).
* :func:`peak_memory` -- the most bytes held at once by the tensors a function
  creates, counted op by op (portable: no CUDA, no allocator statistics needed).
"""

from __future__ import annotations

import logging
import statistics
import weakref
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["compare_times", "mha_vs_torch", "peak_memory"]


def _benchmark_module():
    """``torch.utils.benchmark``, imported on first use. Its import loads
    ``torch.utils.cpp_extension``, which logs a warning on machines without a CUDA
    toolkit, irrelevant to timing Python callables: silenced for that import only."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils import benchmark
    finally:
        logger.setLevel(level)
    return benchmark


def compare_times(
    candidates: dict[str, Callable[[], object]],
    rounds: int = 5,
    min_run_time: float = 0.2,
) -> dict[str, float]:
    """Median seconds per call of each zero-argument callable, measured in interleaved rounds.

    Each round runs every candidate once through ``torch.utils.benchmark.Timer``
    (``blocked_autorange`` for at least ``min_run_time`` seconds); the result is the
    median over rounds.
    """
    if not candidates or not all(callable(fn) for fn in candidates.values()):
        raise TypeError(
            "candidates must be a non-empty dict of name -> zero-argument callable"
        )
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1; got {rounds}")
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for fn in candidates.values():  # warm-up: first calls allocate and pick kernels
        fn()
    for _ in range(rounds):
        for name, fn in candidates.items():
            timer = _benchmark_module().Timer(
                stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads()
            )
            samples[name].append(
                timer.blocked_autorange(min_run_time=min_run_time).median
            )
    return {name: statistics.median(values) for name, values in samples.items()}


def mha_vs_torch(
    batch: int = 32,
    tokens: int = 128,
    d_model: int = 256,
    num_heads: int = 8,
    rounds: int = 5,
    min_run_time: float = 0.5,
    seed: int = 0,
) -> list[dict]:
    """Forward + backward of self-attention through ``attention.MultiHeadAttention`` and
    ``nn.MultiheadAttention`` with identical weights, without a mask and with a key
    padding mask. One row per case: ``case``, ``course_lib_ms``, ``torch_ms`` and
    ``ratio`` (below 1: course_lib is faster)."""
    from torch import nn

    from .attention import MultiHeadAttention, padding_mask

    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(d_model, num_heads, batch_first=True)
    ours = MultiHeadAttention(d_model, num_heads).load_from_torch(theirs)
    x = torch.randn(batch, tokens, d_model, requires_grad=True)
    lengths = torch.randint(
        tokens // 2,
        tokens + 1,
        (batch,),
        generator=torch.Generator().manual_seed(seed + 1),
    )
    real = padding_mask(lengths, tokens)

    def step(module, **kwargs):  # one forward + backward pass
        def run():
            x.grad = None
            module(x, x, x, **kwargs)[0].sum().backward()

        return run

    rows = []
    for case, ours_kwargs, theirs_kwargs in [
        ("no mask", {}, {"need_weights": False}),
        (
            "key padding mask",
            {"key_padding_mask": real},
            {"key_padding_mask": ~real, "need_weights": False},
        ),
    ]:
        times = compare_times(
            {
                "course_lib": step(ours, **ours_kwargs),
                "torch": step(theirs, **theirs_kwargs),
            },
            rounds=rounds,
            min_run_time=min_run_time,
        )
        rows.append(
            {
                "case": case,
                "course_lib_ms": 1e3 * times["course_lib"],
                "torch_ms": 1e3 * times["torch"],
                "ratio": times["course_lib"] / times["torch"],
            }
        )
    return rows


class _TensorMemoryTracker(TorchDispatchMode):
    """Sees every ATen op's outputs; keeps a running total of the bytes of the storages
    they created that are still alive, and the peak of that total."""

    def __init__(self):
        super().__init__()
        self.sizes: dict[int, int] = {}  # storage address -> bytes
        self.owners: dict[int, int] = {}  # storage address -> live tensors using it
        self.tracked = weakref.WeakSet()
        self.current = self.peak = 0

    def _release(self, address: int) -> None:
        self.owners[address] -= 1
        if self.owners[address] == 0:
            self.current -= self.sizes.pop(address)
            del self.owners[address]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr()
            for t in tree_flatten((args, kwargs))[0]
            if isinstance(t, torch.Tensor)
        }
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
