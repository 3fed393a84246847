"""Argument checks shared by the library: clear errors that name the argument."""

from __future__ import annotations

import torch

__all__ = ["check_tensor", "check_floating", "shape_str"]


def shape_str(x: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in x.shape) + ")"


def check_tensor(name: str, x, *, ndim: int | tuple[int, ...] | None = None,
                 min_ndim: int | None = None, expected: str = "") -> torch.Tensor:
    """Raise ``TypeError``/``ValueError`` naming ``name`` unless ``x`` is a tensor of the
    right rank. ``expected`` describes the wanted shape, e.g. ``"(batch, n_q, d)"``."""
    hint = f" {expected}" if expected else ""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor{hint}; got {type(x).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if x.dim() not in allowed:
            raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} dimensions{hint}; "
                             f"got shape {shape_str(x)}")
    if min_ndim is not None and x.dim() < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions{hint}; got shape {shape_str(x)}")
    return x


def check_floating(name: str, x: torch.Tensor) -> torch.Tensor:
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")
    return x
