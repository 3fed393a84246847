"""One small training loop for the whole book.

:func:`fit` runs ``loss_fn(model, batch)`` over batches for a number of steps (or epochs,
or seconds), steps the optimizer (and scheduler), clips gradients if asked, shows a
progress bar and returns a :class:`History` that can plot itself. What differs
between chapters -- a regression loss, a translation loss, DETR's set loss, MoCo's
InfoNCE -- lives in ``loss_fn``; the loop stays the same. Batches usually come from
:func:`course_lib.data.shuffled_batches`.
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

from ._checks import plain_number

__all__ = ["History", "fit", "to_device", "warmup_cosine"]


# Every fit() of this process, as {"desc", "steps", "requested", "seconds",
# "first_step_seconds", "device", "split", "wall_seconds"}. tools.gpu_check counts a
# chapter's steps per second from it and estimates how long uncapped runs take;
# tools.profile_chapters shows where a run's time goes. ``split``: seconds making the
# batches, in the loss function, in backward, in the optimizer, evaluating (on a GPU,
# launch times only: its work is asynchronous); ``wall_seconds``: the whole fit.
COMPLETED: list[dict[str, Any]] = []


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

    def series(
        self, name: str, source: str = "steps"
    ) -> tuple[list[float], list[float]]:
        """(x = step numbers, y = values) of one logged quantity."""
        rows = self.steps if source == "steps" else self.evals
        rows = [r for r in rows if name in r]
        if not rows:
            known = sorted({k for r in (self.steps + self.evals) for k in r})
            raise KeyError(f"nothing called {name!r} was logged; known: {known}")
        return [r["step"] for r in rows], [r[name] for r in rows]

    def smoothed(
        self, name: str = "loss", window: int = 20
    ) -> tuple[list[float], list[float]]:
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

    def plot(
        self,
        loss: str = "loss",
        metrics: Iterable[str] = (),
        *,
        window: int = 20,
        logy: bool = False,
        title: str | None = None,
    ):
        """Training loss (smoothed) on the left; evaluation metrics, if any, on the right."""
        metrics = list(metrics)
        fig, axes = plt.subplots(
            1,
            1 + bool(metrics),
            figsize=(5.2 * (1 + bool(metrics)), 3.4),
            squeeze=False,
            constrained_layout=True,
        )
        ax = axes[0, 0]
        x, y = self.series(loss)
        ax.plot(x, y, color="0.8", lw=0.8, label="per step")
        ax.plot(
            *self.smoothed(loss, window), color="C0", label=f"moving average ({window})"
        )
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


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    total_steps: int,
    final_fraction: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the optimizer's lr, then cosine decay to ``final_fraction`` of it
    at ``total_steps`` (the usual ViT / MoCo v2 schedule), stepped once per step."""
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(
            f"need 0 <= warmup_steps < total_steps; got {warmup_steps}, {total_steps}"
        )

    def rate(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_fraction + (1 - final_fraction) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )

    return torch.optim.lr_scheduler.LambdaLR(optimizer, rate)


def to_device(batch: Any, device: torch.device | str | None) -> Any:
    """Move tensors inside (nested) tuples, lists and dicts to ``device``."""
    if device is None:
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        moved = [to_device(b, device) for b in batch]
        return (
            type(batch)(moved) if not hasattr(batch, "_fields") else type(batch)(*moved)
        )
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def _smoke_steps() -> int | None:
    """The cap on every training loop: a few steps in a smoke run (``COURSE_SMOKE=1``),
    ``COURSE_MAX_STEPS`` when set, else none."""
    from . import _CONFIG, SMOKE_STEPS

    if _CONFIG is None:
        return None
    return SMOKE_STEPS if _CONFIG.smoke else _CONFIG.max_steps


class _MixedPrecision:
    """``torch.autocast`` on CUDA -- bfloat16 where the GPU supports it, else float16 with a
    gradient scaler -- and plain float32 everywhere else (the CPU, MPS)."""

    def __init__(self, device_type: str, enabled: bool | None):
        self.enabled = device_type == "cuda" and enabled is not False
        self.dtype = (
            torch.bfloat16
            if self.enabled and torch.cuda.is_bf16_supported()
            else torch.float16
        )
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=self.enabled and self.dtype == torch.float16
        )

    def autocast(self):
        return torch.autocast("cuda", dtype=self.dtype, enabled=self.enabled)


def _device_type(model: nn.Module, device: torch.device | str | None) -> str:
    if device is not None:
        return torch.device(device).type
    parameter = next(model.parameters(), None)
    return parameter.device.type if parameter is not None else "cpu"


class _StepLog:
    """Per-step numbers kept as tensors and read in one go every ``every`` steps, so that a
    GPU is not stopped at every step to copy a loss to the host."""

    def __init__(self, history: History, every: int):
        self.history, self.every, self.pending = history, every, []

    def add(self, row: dict[str, Any]) -> None:
        self.pending.append(row)
        if len(self.pending) >= self.every:
            self.flush()

    def flush(self) -> None:
        rows, self.pending = self.pending, []
        for row in rows:
            row.update(
                {
                    k: plain_number(k, v)
                    for k, v in row.items()
                    if isinstance(v, torch.Tensor)
                }
            )
            if not math.isfinite(row["loss"]):
                raise FloatingPointError(
                    f"the loss became {row['loss']} at step {row['step']}; "
                    "try a smaller learning rate or gradient clipping"
                )
            self.history.steps.append(row)


def _epochs(batches: Iterable | Callable[[], Iterable]):
    """Yield (epoch, iterable) for ever: a fresh pass over ``batches`` each time."""
    one_shot = not callable(batches) and iter(batches) is batches
    epoch = 0
    while True:
        epoch += 1
        if one_shot and epoch > 1:
            raise ValueError(
                "batches is a one-shot iterator (e.g. a generator) and ran out after "
                "one epoch; pass a list, data.shuffled_batches(...), or a function "
                "that returns a fresh iterable, to train for more steps or epochs"
            )
        yield epoch, batches() if callable(batches) else batches


def _evaluate(
    model: nn.Module, evaluate: Callable[[nn.Module], dict[str, Any]]
) -> dict[str, float]:
    """``evaluate(model)`` in evaluation mode, without gradients, in float32."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        metrics = {k: plain_number(k, v) for k, v in evaluate(model).items()}
    model.train(was_training)
    return metrics


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable | Callable[[], Iterable],
    loss_fn: Callable[
        [nn.Module, Any], torch.Tensor | tuple[torch.Tensor, dict[str, Any]]
    ],
    *,
    steps: int | None = None,
    epochs: int | None = None,
    max_seconds: float | None = None,
    scheduler: Any = None,
    clip_grad_norm: float | None = None,
    evaluate: Callable[[nn.Module], dict[str, Any]] | None = None,
    eval_every: int | None = None,
    device: torch.device | str | None = None,
    mixed_precision: bool | None = None,
    progress: bool = True,
    desc: str = "training",
) -> History:
    """Train ``model`` and return its :class:`History`.

    Parameters
    ----------
    batches:
        A re-iterable of batches (a list, ``data.shuffled_batches(...)``, a
        ``DataLoader``), passed over again every epoch, or a function returning a fresh
        iterable per epoch. A one-shot generator serves one epoch only.
    loss_fn:
        ``loss_fn(model, batch)`` returns the loss to minimise, or
        ``(loss, {"name": value, ...})`` to log more numbers per step (scalar tensors
        are best: they are read from the GPU in batches, not at every step).
    steps, epochs, max_seconds:
        Stop after ``steps`` optimizer steps, ``epochs`` passes over ``batches`` or
        ``max_seconds`` of training, whichever comes first (one epoch if none is
        given). In a smoke run (``COURSE_SMOKE=1``) training stops after
        ``course_lib.SMOKE_STEPS`` steps.
    scheduler:
        Stepped after every optimizer step (so per-step schedules such as warm-up).
    evaluate, eval_every:
        ``evaluate(model)`` returns a dict of metrics; it runs in ``eval`` mode under
        ``torch.no_grad()`` every ``eval_every`` steps (default: at the end of every
        epoch), and once more at the end if the last step was not evaluated. Its time
        is not counted in ``History.seconds``.
    device:
        If given, tensors in each batch are moved there.
    mixed_precision:
        ``None`` (default): ``torch.autocast`` on CUDA (bfloat16, or float16 with a
        gradient scaler on GPUs without bfloat16), float32 elsewhere. ``False``: always
        float32.
    """
    _check_fit_arguments(
        model, optimizer, loss_fn, steps, epochs, max_seconds, eval_every
    )
    if steps is None and epochs is None and max_seconds is None:
        epochs = 1
    requested = steps if steps is not None else _total_steps(batches, epochs)
    smoke = _smoke_steps()
    if smoke is not None:
        steps = smoke if steps is None else min(steps, smoke)
        eval_every = None if eval_every is None else min(eval_every, steps)

    history = History()
    log = _StepLog(history, every=50)
    device_type = _device_type(model, device)
    precision = _MixedPrecision(device_type, mixed_precision)
    bar = tqdm(
        total=steps or _total_steps(batches, epochs),
        desc=desc,
        disable=not progress,
        file=sys.stdout,
        mininterval=1.0,
        ncols=72,
        unit="step",
    )
    step, elapsed, last_eval, first_step_seconds = 0, 0.0, {}, 0.0
    split = dict.fromkeys(
        ("batches", "loss", "backward", "optimizer", "evaluation"), 0.0
    )

    def run_evaluation(epoch: int) -> dict[str, float]:
        log.flush()
        evaluation_start = time.perf_counter()
        metrics = _evaluate(model, evaluate)
        split["evaluation"] += time.perf_counter() - evaluation_start
        history.evals.append({"step": step, "epoch": epoch, **metrics})
        return metrics

    def done() -> bool:
        return (steps is not None and step >= steps) or (
            max_seconds is not None and elapsed >= max_seconds
        )

    model.train()
    fit_start = time.perf_counter()
    for epoch, iterable in _epochs(batches):
        steps_before = step
        asked = time.perf_counter()
        for batch in iterable:
            # -- one training step ------------------------------------------------------
            start = time.perf_counter()
            split["batches"] += start - asked
            with precision.autocast():
                loss, logged = _loss(loss_fn, model, to_device(batch, device))
            forward_done = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            precision.scaler.scale(loss).backward()
            backward_done = time.perf_counter()
            if clip_grad_norm is not None:
                precision.scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            precision.scaler.step(optimizer)
            precision.scaler.update()
            if scheduler is not None:
                scheduler.step()
            split["loss"] += forward_done - start
            split["backward"] += backward_done - forward_done
            split["optimizer"] += time.perf_counter() - backward_done
            step += 1
            if device_type == "cuda" and step % log.every == 0:
                torch.cuda.synchronize()  # count the GPU's queued work in the training time
            elapsed += time.perf_counter() - start
            if step == 1:
                first_step_seconds = elapsed  # allocation, kernel choice: not typical
            # -- bookkeeping ------------------------------------------------------------
            log.add(
                {
                    "step": step,
                    "epoch": epoch,
                    "loss": loss.detach().float(),
                    "lr": optimizer.param_groups[0]["lr"],
                    **logged,
                }
            )
            if (
                evaluate is not None
                and eval_every is not None
                and step % eval_every == 0
            ):
                last_eval = run_evaluation(epoch)
            if bar.update(1):  # True when the bar is redrawn (at most once a second)
                log.flush()
                bar.set_postfix(
                    loss=f"{history.steps[-1]['loss']:.4f}",
                    **{k: f"{v:.4g}" for k, v in last_eval.items()},
                    refresh=False,
                )
            if done():
                break
            asked = time.perf_counter()
        if step == steps_before:
            raise ValueError(
                f"batches produced no batch in epoch {epoch}; nothing to train on"
            )
        if evaluate is not None and eval_every is None:
            last_eval = run_evaluation(epoch)
        if done() or epoch == epochs:
            break
    log.flush()
    bar.close()
    if evaluate is not None and (
        not history.evals or history.evals[-1]["step"] != step
    ):
        last_eval = run_evaluation(epoch)  # always end with the final model's metrics
    history.seconds = elapsed
    COMPLETED.append(
        {
            "desc": desc,
            "steps": step,
            "requested": requested,  # None when only the epochs are known
            "seconds": elapsed,
            "first_step_seconds": first_step_seconds,
            "device": device_type,
            "split": split,
            "wall_seconds": time.perf_counter() - fit_start,
        }
    )
    if progress:
        readings = [f"final loss {history.steps[-1]['loss']:.4g}"]
        readings += [f"{k} {v:.4g}" for k, v in last_eval.items()]
        readings = [r + "," for r in readings[:-1]] + readings[-1:]
        if smoke is not None:
            readings.append(f"(capped at {smoke} steps)")
        print(_wrapped(f"{step} steps in {elapsed:.1f} s;", readings))
    return history


def _wrapped(head: str, readings: list[str], width: int = 60) -> str:
    """``head`` then the readings, broken into lines of at most ``width`` characters
    (continuation lines indented), so a printed page never scrolls sideways."""
    lines, line = [], head
    for piece in readings:
        if len(line) + 1 + len(piece) > width:
            lines.append(line)
            line = "  " + piece
        else:
            line += " " + piece
    return "\n".join(lines + [line])


def _loss(loss_fn, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    """``loss_fn(model, batch)`` as (scalar loss, {name: detached scalar or float})."""
    out = loss_fn(model, batch)
    loss, logged = out if isinstance(out, tuple) else (out, {})
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError(
            f"loss_fn must return a scalar tensor (or (loss, dict)); got {type(loss).__name__}"
        )
    return loss, {
        k: v.detach() if isinstance(v, torch.Tensor) else float(v)
        for k, v in logged.items()
    }


def _total_steps(batches, epochs: int | None) -> int | None:
    """For the progress bar: epochs x batches per epoch, where both are known."""
    try:
        return epochs * len(batches) if epochs is not None else None
    except TypeError:
        return None


def _check_fit_arguments(
    model, optimizer, loss_fn, steps, epochs, max_seconds, eval_every
) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer; got {type(optimizer).__name__}"
        )
    if not callable(loss_fn):
        raise TypeError("loss_fn must be callable as loss_fn(model, batch)")
    for name, value in (
        ("steps", steps),
        ("epochs", epochs),
        ("eval_every", eval_every),
    ):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(
                f"{name} must be a positive integer (or None); got {value!r}"
            )
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be positive (or None); got {max_seconds!r}")
