"""Argument checks shared by the library: clear errors that name the argument."""

from __future__ import annotations

import math
import numbers
import operator
import os
from typing import Any

import numpy as np
import torch

__all__ = [
    "check_tensor",
    "check_floating",
    "shape_str",
    "plain_value",
    "plain_number",
    "check_size",
    "environment_flag",
]


def shape_str(x: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in x.shape) + ")"


def check_tensor(
    name: str,
    x,
    *,
    ndim: int | tuple[int, ...] | None = None,
    min_ndim: int | None = None,
    expected: str = "",
) -> torch.Tensor:
    """Raise ``TypeError``/``ValueError`` naming ``name`` unless ``x`` is a tensor of the
    right rank. ``expected`` describes the wanted shape, e.g. ``"(batch, n_q, d)"``."""
    hint = f" {expected}" if expected else ""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor{hint}; got {type(x).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if x.dim() not in allowed:
            raise ValueError(
                f"{name} must have {' or '.join(map(str, allowed))} dimensions{hint}; "
                f"got shape {shape_str(x)}"
            )
    if min_ndim is not None and x.dim() < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimensions{hint}; got shape {shape_str(x)}"
        )
    return x


def check_size(name: str, value, minimum: int = 1) -> int:
    """An integer size (a Python int, a NumPy integer or a 0-d integer tensor such as
    ``lengths.max()``) that is at least ``minimum``, as a Python int."""
    try:
        if isinstance(value, bool) or (
            isinstance(value, torch.Tensor) and value.is_floating_point()
        ):
            raise TypeError
        size = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be a positive integer; got {value!r}") from None
    if size < minimum:
        wanted = {0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
        raise ValueError(f"{name} must be {wanted}; got {size}")
    return size


def environment_flag(name: str, meaning: str) -> bool:
    """A yes/no environment variable: unset, 0, false or no is False; 1, true or yes is
    True; anything else is an error that says what ``name`` means."""
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ValueError(f"{name} must be {meaning}; got {raw!r}")


def check_floating(name: str, x: torch.Tensor) -> torch.Tensor:
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")
    return x


def plain_value(name: str, value: Any) -> Any:
    """A tensor, NumPy scalar, number, bool, string or list of them, as plain Python values
    (JSON-friendly); a non-finite number is refused, naming ``name``."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().tolist() if value.numel() != 1 else value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple)):
        return [plain_value(name, v) for v in value]
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise ValueError(
                f"metric {name!r} is {value}; a headline number must be finite"
            )
        return float(value)
    raise TypeError(
        f"metric {name!r} must be a number, bool, string or list of numbers; "
        f"got {type(value).__name__}"
    )


def plain_number(name: str, value: Any) -> float:
    """One logged number (a scalar tensor or a number) as a Python float; NaN and inf pass
    (the training loop reports a diverging loss itself)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"{name!r} has shape {tuple(value.shape)}; logged values must be scalars"
            )
        return float(value.detach().item())
    return float(value)
