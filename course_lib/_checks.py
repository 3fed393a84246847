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
    "autocasting",
    "check_mask",
    "check_attention_inputs",
    "check_multihead_inputs",
    "check_same_sizes",
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


# -- attention (chapters 2-4) --------------------------------------------------------


def autocasting(x: torch.Tensor) -> bool:
    """Whether ``torch.autocast`` is on for ``x``'s device (then inputs and weights may differ)."""
    if x.device.type not in ("cpu", "cuda", "mps", "xpu"):
        return False  # e.g. the meta device: no autocast there
    try:
        return torch.is_autocast_enabled(x.device.type)
    except TypeError:  # PyTorch < 2.4
        if x.device.type == "cuda":
            return torch.is_autocast_enabled()
        return torch.is_autocast_cpu_enabled()


def check_mask(
    name: str,
    mask,
    *,
    shape: tuple[int, ...] | None = None,
    broadcasts_to: torch.Size | None = None,
    expected: str = "",
    meaning: str = "True = may attend",
) -> None:
    """Every mask of the library passes here: a bool tensor (``meaning``) of exactly
    ``shape``, or one that broadcasts to ``broadcasts_to`` without enlarging it.
    ``expected`` names the wanted shape, e.g. ``"(batch, n_k)"``."""
    check_tensor(name, mask, expected=f"(bool, {expected})")
    if mask.dtype != torch.bool:
        raise TypeError(
            f"{name} must be a bool tensor ({meaning}); got dtype {mask.dtype}. "
            f"Convert a 0/1 mask with {name}.bool()"
        )
    if shape is not None and tuple(mask.shape) != tuple(shape):
        raise ValueError(
            f"{name} must have shape {expected} = {tuple(shape)}; got {shape_str(mask)}"
        )
    if broadcasts_to is not None:
        try:
            fits = torch.broadcast_shapes(mask.shape, broadcasts_to) == broadcasts_to
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(
                f"{name} of shape {shape_str(mask)} does not broadcast to the scores' "
                f"shape {tuple(broadcasts_to)} {expected}"
            )


def check_attention_inputs(queries, keys, values, mask) -> None:
    """queries (..., n_q, d), keys (..., n_k, d), values (..., n_k, d_v) of one floating
    dtype, with broadcastable batch dimensions, and a mask that fits their scores."""
    for name, x, shape in (
        ("queries", queries, "(..., n_q, d)"),
        ("keys", keys, "(..., n_k, d)"),
        ("values", values, "(..., n_k, d_v)"),
    ):
        check_tensor(name, x, min_ndim=2, expected=shape)
        check_floating(name, x)
    if not autocasting(queries) and not queries.dtype == keys.dtype == values.dtype:
        raise TypeError(
            f"queries, keys and values must have one dtype; got {queries.dtype}, "
            f"{keys.dtype} and {values.dtype} (convert with .to(queries.dtype))"
        )
    if queries.shape[-1] != keys.shape[-1]:
        raise ValueError(
            "queries and keys must have the same feature size d for a dot product: "
            f"queries {shape_str(queries)} has d={queries.shape[-1]}, "
            f"keys {shape_str(keys)} has d={keys.shape[-1]}"
        )
    if keys.shape[-2] != values.shape[-2]:
        raise ValueError(
            "keys and values must come in pairs (same n_k): "
            f"keys {shape_str(keys)}, values {shape_str(values)}"
        )
    try:
        batch = torch.broadcast_shapes(
            queries.shape[:-2], keys.shape[:-2], values.shape[:-2]
        )
    except RuntimeError:
        raise ValueError(
            "the batch dimensions (...) of queries, keys and values do not broadcast: "
            f"{shape_str(queries)}, {shape_str(keys)}, {shape_str(values)}"
        ) from None
    if mask is not None:
        scores_shape = torch.Size((*batch, queries.shape[-2], keys.shape[-2]))
        check_mask("mask", mask, broadcasts_to=scores_shape, expected="(..., n_q, n_k)")


def check_multihead_inputs(module, query, key, value, key_padding_mask, attn_mask):
    """The inputs of ``MultiHeadAttention.forward``: query (B, n_q, D), key and value
    (B, n_k, D) in the weights' dtype, key_padding_mask (B, n_k) and attn_mask (n_q, n_k),
    (B, n_q, n_k) or (B, H, n_q, n_k)."""
    d_model, weights_dtype = module.d_model, module.in_proj.weight.dtype
    for name, x in (("query", query), ("key", key), ("value", value)):
        check_tensor(name, x, ndim=3, expected=f"(batch, tokens, d_model={d_model})")
        if x.shape[-1] != d_model:
            raise ValueError(
                f"{name} must have d_model={d_model} features; got shape {shape_str(x)}"
            )
    if not autocasting(query) and not (
        query.dtype == key.dtype == value.dtype == weights_dtype
    ):
        raise TypeError(
            f"query, key, value and the weights must have one dtype; got {query.dtype}, "
            f"{key.dtype}, {value.dtype} and {weights_dtype} (convert the inputs with "
            f".to({weights_dtype}), or the module with .to(dtype))"
        )
    if key.shape[:2] != value.shape[:2] or query.shape[0] != key.shape[0]:
        raise ValueError(
            f"query {shape_str(query)}, key {shape_str(key)} and value {shape_str(value)} "
            "must share the batch size, and key and value the number of tokens"
        )
    (batch, n_q), n_k = query.shape[:2], key.shape[1]
    if key_padding_mask is not None:
        check_mask(
            "key_padding_mask",
            key_padding_mask,
            shape=(batch, n_k),
            expected="(batch, n_k)",
            meaning="True = real token, may be attended",
        )
    if attn_mask is not None:
        shapes = {
            2: ("(n_q, n_k)", (n_q, n_k)),
            3: ("(batch, n_q, n_k)", (batch, n_q, n_k)),
            4: ("(batch, heads, n_q, n_k)", (batch, module.num_heads, n_q, n_k)),
        }
        names = ", ".join(name for name, _ in shapes.values())
        check_tensor("attn_mask", attn_mask, ndim=tuple(shapes), expected=names)
        expected, shape = shapes[attn_mask.dim()]
        check_mask("attn_mask", attn_mask, shape=shape, expected=expected)


def check_same_sizes(ours, theirs) -> None:
    """``theirs``, an ``nn.MultiheadAttention``, has the sizes and biases of ``ours``, a
    ``MultiHeadAttention``, so that every weight can be copied across."""
    if not isinstance(theirs, torch.nn.MultiheadAttention):
        raise TypeError(
            f"module must be an nn.MultiheadAttention; got {type(theirs).__name__}"
        )
    sizes = (theirs.embed_dim, theirs.num_heads)
    if sizes != (ours.d_model, ours.num_heads) or theirs.in_proj_weight is None:
        raise ValueError(
            "module must have the same d_model and num_heads and packed in-projection "
            "weights"
        )
    has, wanted = theirs.in_proj_bias is not None, ours.in_proj.bias is not None
    if has != wanted:
        raise ValueError(
            f"module has {'biases' if has else 'no biases'} but this "
            f"MultiHeadAttention {'has' if wanted else 'has none'}; build it with "
            f"bias={has} to copy every weight"
        )
