"""One small training loop for the whole book.

:func:`fit` runs ``loss_fn(model, batch)`` over batches for some epochs (or steps, or
seconds), steps the optimizer (and scheduler), clips gradients if asked, shows a
progress bar and returns a :class:`History` that can plot itself. What differs
between chapters -- a regression loss, a translation loss, DETR's set loss, MoCo's
InfoNCE -- lives in ``loss_fn``; the loop stays the same.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import torch
from torch import nn
from tqdm.std import tqdm

__all__ = ["History", "fit", "to_device", "warmup_inverse_sqrt", "warmup_cosine"]


@dataclass
class History:
    """What happened during :func:`fit`.

    ``steps``: one dict per optimisation step (``step``, ``epoch``, ``loss``, ``lr`` and
    whatever else ``loss_fn`` reported). ``evals``: one dict per evaluation (``step``,
    ``epoch`` and the metrics ``evaluate`` returned). ``seconds``: wall-clock time of
    training, evaluation excluded.
    """

    steps: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    def series(self, name: str, source: str = "steps") -> tuple[list[float], list[float]]:
        """(x = step numbers, y = values) of one logged quantity."""
        rows = self.steps if source == "steps" else self.evals
        rows = [r for r in rows if name in r]
        if not rows:
            known = sorted({k for r in (self.steps + self.evals) for k in r})
            raise KeyError(f"nothing called {name!r} was logged; known: {known}")
        return [r["step"] for r in rows], [r[name] for r in rows]

    def smoothed(self, name: str = "loss", window: int = 20) -> tuple[list[float], list[float]]:
        """Moving average of a per-step quantity (a readable loss curve)."""
        x, y = self.series(name)
        window = max(1, min(window, len(y)))
        out, total = [], 0.0
        for i, v in enumerate(y):
            total += v
            if i >= window:
                total -= y[i - window]
            out.append(total / min(i + 1, window))
        return x, out

    def plot(self, loss: str = "loss", metrics: Iterable[str] = (), *, window: int = 20,
             logy: bool = False, title: str | None = None):
        """Training loss (smoothed) on the left; evaluation metrics, if any, on the right."""
        metrics = list(metrics)
        fig, axes = plt.subplots(1, 1 + bool(metrics), figsize=(5.2 * (1 + bool(metrics)), 3.4),
                                 squeeze=False, constrained_layout=True)
        ax = axes[0, 0]
        x, y = self.series(loss)
        ax.plot(x, y, color="0.8", lw=0.8, label="per step")
        ax.plot(*self.smoothed(loss, window), color="C0", label=f"moving average ({window})")
        ax.set(xlabel="step", ylabel=loss, title=title or "training loss")
        if logy:
            ax.set_yscale("log")
        ax.legend()
        if metrics:
            ax = axes[0, 1]
            for name in metrics:
                ax.plot(*self.series(name, "evals"), marker="o", ms=3, label=name)
            ax.set(xlabel="step", title="evaluation")
            ax.legend()
        return fig


def warmup_inverse_sqrt(optimizer: torch.optim.Optimizer, d_model: int, warmup_steps: int,
                        factor: float = 1.0) -> torch.optim.lr_scheduler.LambdaLR:
    """The Transformer's schedule (Vaswani et al., 2017, eq. 3), stepped once per step:
    lr = factor * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5) -- linear warm-up,
    then decay as 1/sqrt(step). Set the optimizer's lr to 1; this multiplies it."""
    if warmup_steps < 1:
        raise ValueError(f"warmup_steps must be positive; got {warmup_steps}")

    def rate(step: int) -> float:
        step = step + 1
        return factor * d_model ** -0.5 * min(step ** -0.5, step * warmup_steps ** -1.5)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, rate)


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                  final_fraction: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the optimizer's lr, then cosine decay to ``final_fraction`` of it
    at ``total_steps`` (the usual ViT / MoCo v2 schedule), stepped once per step."""
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"need 0 <= warmup_steps < total_steps; got {warmup_steps}, {total_steps}")

    def rate(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, rate)


def to_device(batch: Any, device: torch.device | str | None) -> Any:
    """Move tensors inside (nested) tuples, lists and dicts to ``device``."""
    if device is None:
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        moved = [to_device(b, device) for b in batch]
        return type(batch)(moved) if not hasattr(batch, "_fields") else type(batch)(*moved)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def _number(name: str, value: Any) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"loss_fn reported {name!r} with shape {tuple(value.shape)}; "
                             "logged values must be scalars")
        return value.detach().item()
    return float(value)


def _smoke_steps() -> int | None:
    """In a smoke run (``COURSE_SMOKE=1``) every training loop stops after a few steps."""
    from . import SMOKE_STEPS, _CONFIG

    return SMOKE_STEPS if _CONFIG is not None and _CONFIG.smoke else None


class _MixedPrecision:
    """``torch.autocast`` on CUDA -- bfloat16 where the GPU supports it, else float16 with a
    gradient scaler -- and plain float32 everywhere else (the CPU, MPS)."""

    def __init__(self, device_type: str, enabled: bool | None):
        self.enabled = device_type == "cuda" if enabled is None else enabled and device_type == "cuda"
        self.dtype = torch.bfloat16 if self.enabled and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.enabled and self.dtype == torch.float16)

    def autocast(self):
        return torch.autocast("cuda", dtype=self.dtype, enabled=self.enabled)


def _model_device_type(model: nn.Module, device: torch.device | str | None) -> str:
    if device is not None:
        return torch.device(device).type
    parameter = next(model.parameters(), None)
    return parameter.device.type if parameter is not None else "cpu"


class _StepLog:
    """Per-step numbers kept as tensors and read in one go every ``every`` steps, so that a
    GPU is not stopped at every step to copy a loss to the host."""

    def __init__(self, history: "History", every: int):
        self.history, self.every, self.pending = history, every, []

    def add(self, row: dict[str, Any]) -> None:
        self.pending.append(row)
        if len(self.pending) >= self.every:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        for row in self.pending:
            row.update({k: _number(k, v) for k, v in row.items() if isinstance(v, torch.Tensor)})
            if not math.isfinite(row["loss"]):
                self.history.steps.extend(self.pending[:self.pending.index(row)])
                self.pending = []
                raise FloatingPointError(f"the loss became {row['loss']} at step {row['step']}; "
                                         "try a smaller learning rate or gradient clipping")
        self.history.steps.extend(self.pending)
        self.pending = []


def fit(model: nn.Module, optimizer: torch.optim.Optimizer,
        batches: Iterable | Callable[[], Iterable],
        loss_fn: Callable[[nn.Module, Any], torch.Tensor | tuple[torch.Tensor, dict[str, Any]]],
        *, epochs: int = 1, max_steps: int | None = None, max_seconds: float | None = None,
        scheduler: Any = None, clip_grad_norm: float | None = None,
        evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
        eval_every: int | None = None, device: torch.device | str | None = None,
        mixed_precision: bool | None = None, progress: bool = True,
        desc: str = "training") -> History:
    """Train ``model`` and return its :class:`History`.

    Parameters
    ----------
    batches:
        An iterable of batches (re-iterated every epoch, e.g. a ``DataLoader`` or a
        list), or a function returning a fresh iterable per epoch.
    loss_fn:
        ``loss_fn(model, batch)`` returns the loss to minimise, or
        ``(loss, {"name": value, ...})`` to log more numbers per step (scalar tensors
        are best: they are read from the GPU in batches, not at every step).
    epochs, max_steps, max_seconds:
        Stop after ``epochs`` passes, or earlier at ``max_steps`` steps or once
        ``max_seconds`` of training have passed (checked after every step). In a smoke
        run (``COURSE_SMOKE=1``) training stops after ``course_lib.SMOKE_STEPS`` steps.
    scheduler:
        Stepped after every optimizer step (so per-step schedules such as warm-up).
    evaluate, eval_every:
        ``evaluate(model)`` returns a dict of metrics; it runs in ``eval`` mode under
        ``torch.no_grad()`` after every ``eval_every`` steps (default: at the end of
        every epoch), and once more at the end if the last step was not evaluated.
        Its time is not counted in ``History.seconds``.
    device:
        If given, tensors in each batch are moved there.
    mixed_precision:
        ``None`` (default): ``torch.autocast`` on CUDA (bfloat16, or float16 with a
        gradient scaler on GPUs without bfloat16), float32 elsewhere. ``False``: always
        float32.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer; got {type(optimizer).__name__}")
    if not callable(loss_fn):
        raise TypeError("loss_fn must be callable as loss_fn(model, batch)")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer; got {epochs!r}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be positive; got {max_steps!r}")
    if eval_every is not None and eval_every < 1:
        raise ValueError(f"eval_every must be positive; got {eval_every!r}")
    smoke = _smoke_steps()
    if smoke is not None:
        max_steps = smoke if max_steps is None else min(max_steps, smoke)
        if eval_every is not None:
            eval_every = min(eval_every, max_steps)

    history = History()
    log = _StepLog(history, every=50)
    device_type = _model_device_type(model, device)
    precision = _MixedPrecision(device_type, mixed_precision)
    step, elapsed, stop = 0, 0.0, False

    def run_evaluation(epoch: int) -> dict[str, float]:
        log.flush()
        was_training = model.training
        model.eval()
        with torch.no_grad():  # in float32: evaluations may hand features to scikit-learn
            metrics = {k: _number(k, v) for k, v in evaluate(model).items()}
        model.train(was_training)
        history.evals.append({"step": step, "epoch": epoch, **metrics})
        return metrics

    total = max_steps
    if total is None:
        try:
            total = epochs * len(batches)  # type: ignore[arg-type]
        except TypeError:
            total = None
    bar = tqdm(total=total, desc=desc, disable=not progress, file=sys.stdout,
               mininterval=1.0, ncols=72, unit="step")
    last_eval: dict[str, float] = {}
    model.train()
    for epoch in range(1, epochs + 1):
        iterable = batches() if callable(batches) else batches
        for batch in iterable:
            start = time.perf_counter()
            batch = to_device(batch, device)
            with precision.autocast():
                out = loss_fn(model, batch)
            loss, logged = (out if isinstance(out, tuple) else (out, {}))
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError("loss_fn must return a scalar tensor (or (loss, dict)); "
                                 f"got {type(loss).__name__}")
            optimizer.zero_grad(set_to_none=True)
            precision.scaler.scale(loss).backward()
            if clip_grad_norm is not None:
                precision.scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            precision.scaler.step(optimizer)
            precision.scaler.update()
            if scheduler is not None:
                scheduler.step()
            step += 1
            if device_type == "cuda" and step % log.every == 0:
                torch.cuda.synchronize()  # count the GPU's queued work in the training time
            elapsed += time.perf_counter() - start
            log.add({"step": step, "epoch": epoch, "loss": loss.detach().float(),
                     "lr": optimizer.param_groups[0]["lr"],
                     **{k: v.detach() if isinstance(v, torch.Tensor) else float(v)
                        for k, v in logged.items()}})
            if evaluate is not None and eval_every is not None and step % eval_every == 0:
                last_eval = run_evaluation(epoch)
            if bar.update(1):  # True when the bar is redrawn (at most once a second)
                log.flush()
                bar.set_postfix(loss=f"{history.steps[-1]['loss']:.4f}",
                                **{k: f"{v:.4g}" for k, v in last_eval.items()}, refresh=False)
            if (max_steps is not None and step >= max_steps) or \
                    (max_seconds is not None and elapsed >= max_seconds):
                stop = True
                break
        if evaluate is not None and eval_every is None:
            last_eval = run_evaluation(epoch)
        if stop:
            break
    log.flush()
    if history.steps:
        bar.set_postfix(loss=f"{history.steps[-1]['loss']:.4f}",
                        **{k: f"{v:.4g}" for k, v in last_eval.items()}, refresh=False)
    bar.close()
    if step == 0:
        raise ValueError("batches produced no batch at all; nothing was trained")
    if evaluate is not None and (not history.evals or history.evals[-1]["step"] != step):
        last_eval = run_evaluation(epoch)  # always end with the final model's metrics
    history.seconds = elapsed
    summary = f"{step} steps in {elapsed:.1f} s; final loss {history.steps[-1]['loss']:.4g}"
    if last_eval:
        summary += "; " + ", ".join(f"{k} {v:.4g}" for k, v in last_eval.items())
    if smoke is not None:
        summary += f" (smoke run: stopped after {smoke} steps)"
    if progress:
        print(summary)
    return history
