"""Attention, from kernel regression to multi-head attention.

Read this file top to bottom; it follows the book:

1. **Attention pooling** (chapter 1): Nadaraya--Watson kernel regression. A query
   ``q`` looks at keys ``k_i`` and returns a weighted average of their values ``v_i``;
   the weights come from a kernel of the distance ``q - k_i``.
2. **Scoring functions** (chapter 2): weights = softmax of a score a(q, k). Masks say
   which keys a query may see; additive attention scores with a small MLP; scaled
   dot-product attention with q . k / sqrt(d) -- explicitly (returning the weights)
   and through PyTorch's fused kernel.

Shapes are written as ``(n_q,)``, ``(..., n_k, d_v)`` ...: ``n_q`` queries, ``n_k``
keys (and as many values), ``d`` features per query and key, ``d_v`` per value, and
``...`` any batch dimensions. Masks are boolean and **True means "may attend"**.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_floating, check_tensor, shape_str

__all__ = [
    "gaussian_kernel", "boxcar_kernel", "epanechnikov_kernel", "KERNELS",
    "nadaraya_watson", "ParametricNadarayaWatson",
    "padding_mask", "masked_softmax", "AdditiveAttention",
    "scaled_dot_product_attention", "fused_attention",
]

# ---------------------------------------------------------------------------
# 1. Attention pooling: Nadaraya--Watson kernel regression (chapter 1)
# ---------------------------------------------------------------------------


def gaussian_kernel(u: torch.Tensor) -> torch.Tensor:
    """K(u) = exp(-u^2 / 2). Never zero: every key gets some weight."""
    return torch.exp(-u ** 2 / 2)


def boxcar_kernel(u: torch.Tensor) -> torch.Tensor:
    """K(u) = 1 if |u| <= 1 else 0: a plain average of the keys within one bandwidth."""
    return (u.abs() <= 1).to(u.dtype)


def epanechnikov_kernel(u: torch.Tensor) -> torch.Tensor:
    """K(u) = 3/4 (1 - u^2) for |u| <= 1, else 0: near keys count more, far keys not at all."""
    return 0.75 * (1 - u ** 2).clamp(min=0)


KERNELS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gaussian": gaussian_kernel,
    "boxcar": boxcar_kernel,
    "epanechnikov": epanechnikov_kernel,
}


def _check_pooling_args(queries, keys, values) -> None:
    check_tensor("queries", queries, ndim=1, expected="(n_q,)")
    check_tensor("keys", keys, ndim=1, expected="(n_k,)")
    check_tensor("values", values, ndim=(1, 2), expected="(n_k,) or (n_k, d_v)")
    for name, x in (("queries", queries), ("keys", keys), ("values", values)):
        check_floating(name, x)
    if values.shape[0] != keys.shape[0]:
        raise ValueError(f"values must have one row per key: keys has shape {shape_str(keys)}, "
                         f"values has shape {shape_str(values)}")


def nadaraya_watson(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                    bandwidth: float | torch.Tensor = 1.0,
                    kernel: str | Callable[[torch.Tensor], torch.Tensor] = "gaussian",
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Nadaraya--Watson attention pooling.

    f(q) = sum_i alpha(q, k_i) v_i  with  alpha(q, k_i) = K((q - k_i)/h) / sum_j K((q - k_j)/h).

    Args:
        queries: (n_q,) query locations.
        keys: (n_k,) key locations (the training inputs).
        values: (n_k,) or (n_k, d_v) values (the training targets).
        bandwidth: h > 0, the kernel's width.
        kernel: ``"gaussian"``, ``"boxcar"``, ``"epanechnikov"`` or a function of u.

    Returns:
        predictions: (n_q,) or (n_q, d_v).
        weights: (n_q, n_k) attention weights; each row sums to 1, except for a query
        that no key reaches (a compact kernel with a small ``h``): its row is all zeros
        and its prediction 0.
    """
    _check_pooling_args(queries, keys, values)
    if isinstance(kernel, str):
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {sorted(KERNELS)} or a function; got {kernel!r}")
        kernel_fn = KERNELS[kernel]
    elif callable(kernel):
        kernel_fn = kernel
    else:
        raise TypeError(f"kernel must be a name or a function; got {type(kernel).__name__}")
    bandwidth = torch.as_tensor(bandwidth, dtype=queries.dtype, device=queries.device)
    if bandwidth.numel() != 1 or not bool(bandwidth > 0):
        raise ValueError(f"bandwidth must be one positive number; got {bandwidth}")

    u = (queries[:, None] - keys[None, :]) / bandwidth            # (n_q, n_k)
    if kernel_fn is gaussian_kernel:
        # exp(-u^2/2) / sum exp(-u^2/2) is a softmax over keys of the score -u^2/2;
        # the softmax form cannot underflow to 0/0 when h is small.
        weights = torch.softmax(-u ** 2 / 2, dim=-1)
    else:
        k = kernel_fn(u)
        weights = k / k.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(k.dtype).tiny)
    predictions = weights @ values                                 # (n_q,) or (n_q, d_v)
    return predictions, weights


class ParametricNadarayaWatson(nn.Module):
    """Nadaraya--Watson pooling with a learnable inverse width ``w``.

    alpha(q, k_i) = softmax_i(-((q - k_i) w)^2 / 2), i.e. a Gaussian kernel with
    bandwidth 1/|w|. ``forward`` keeps the last weights in ``self.attention_weights``
    (n_q, n_k) for plotting.
    """

    def __init__(self, init_w: float = 1.0):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(float(init_w)))
        self.attention_weights: torch.Tensor | None = None

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                exclude_self: bool = False) -> torch.Tensor:
        """queries (n_q,), keys (n_k,), values (n_k,) or (n_k, d_v) -> (n_q,) or (n_q, d_v).

        ``exclude_self=True`` (needs n_q == n_k, query i = key i) hides key i from
        query i: the leave-one-out fit used for training, without which the best
        ``w`` is infinite (every point predicts itself).
        """
        _check_pooling_args(queries, keys, values)
        scores = -((queries[:, None] - keys[None, :]) * self.w) ** 2 / 2   # (n_q, n_k)
        if exclude_self:
            if queries.shape[0] != keys.shape[0]:
                raise ValueError("exclude_self=True needs as many queries as keys "
                                 f"(query i is key i); got {queries.shape[0]} and {keys.shape[0]}")
            eye = torch.eye(keys.shape[0], dtype=torch.bool, device=keys.device)
            scores = scores.masked_fill(eye, torch.finfo(scores.dtype).min)
        self.attention_weights = torch.softmax(scores, dim=-1)
        return self.attention_weights @ values

    def extra_repr(self) -> str:
        return f"w={self.w.item():.4g}"


# ---------------------------------------------------------------------------
# 2. Scoring functions: masks, additive and scaled dot-product attention (chapter 2)
# ---------------------------------------------------------------------------


def padding_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) sequence lengths -> (B, max_len) bool mask, True at real tokens.

    ``padding_mask(torch.tensor([2, 3]), 4)`` is ``[[T, T, F, F], [T, T, T, F]]``.
    Add dimensions to broadcast it over queries: ``mask[:, None, :]`` is (B, 1, n_k).
    """
    check_tensor("lengths", lengths, ndim=1, expected="(batch,)")
    if torch.is_floating_point(lengths) or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must be an integer tensor; got dtype {lengths.dtype}")
    if not isinstance(max_len, int) or max_len < 0:
        raise ValueError(f"max_len must be a non-negative integer; got {max_len!r}")
    if lengths.numel() and (lengths.min() < 0 or lengths.max() > max_len):
        raise ValueError(f"lengths must lie in [0, max_len={max_len}]; got {lengths.tolist()}")
    return torch.arange(max_len, device=lengths.device) < lengths[:, None]


def _check_mask(mask, target_shape: torch.Size, expected: str) -> None:
    """A bool mask that broadcasts to ``target_shape`` without enlarging it."""
    check_tensor("mask", mask, expected=f"(bool, broadcastable to {expected})")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = may attend); got dtype {mask.dtype}. "
                        "Convert a 0/1 mask with mask.bool()")
    try:
        broadcast = torch.broadcast_shapes(mask.shape, target_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != target_shape:
        raise ValueError(f"mask of shape {shape_str(mask)} does not broadcast to the scores' shape "
                         f"{tuple(target_shape)} {expected}")


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None = None,
                   dim: int = -1) -> torch.Tensor:
    """Softmax over ``dim`` (the keys) that gives masked positions exactly zero weight.

    Args:
        scores: (..., n_q, n_k) floating point.
        mask: bool, broadcastable to ``scores``; True = may attend. ``None`` = no mask.

    Masked scores are replaced by the most negative *finite* number of the dtype
    (not a magic -1e6, which is -inf in float16), so nothing overflows to NaN. A row
    in which every key is masked gets all-zero weights instead of NaN, and its
    gradient is zero, not NaN. Returns weights of the same shape as ``scores``.
    """
    check_tensor("scores", scores, min_ndim=1, expected="(..., n_q, n_k)")
    check_floating("scores", scores)
    if mask is None:
        return torch.softmax(scores, dim=dim)
    _check_mask(mask, scores.shape, "(..., n_q, n_k)")
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    # A fully masked row is now constant, so its softmax is uniform; zero it out.
    return torch.softmax(scores, dim=dim).masked_fill(~mask, 0.0)


def _check_qkv(queries, keys, values, mask) -> torch.Size:
    """Check (..., n_q, d), (..., n_k, d), (..., n_k, d_v) and the mask; return the scores' shape."""
    for name, x, shape in (("queries", queries, "(..., n_q, d)"), ("keys", keys, "(..., n_k, d)"),
                           ("values", values, "(..., n_k, d_v)")):
        check_tensor(name, x, min_ndim=2, expected=shape)
        check_floating(name, x)
    if queries.shape[-1] != keys.shape[-1]:
        raise ValueError("queries and keys must have the same feature size d for a dot product: "
                         f"queries {shape_str(queries)} has d={queries.shape[-1]}, "
                         f"keys {shape_str(keys)} has d={keys.shape[-1]}")
    if keys.shape[-2] != values.shape[-2]:
        raise ValueError("keys and values must come in pairs (same n_k): "
                         f"keys {shape_str(keys)}, values {shape_str(values)}")
    try:
        batch = torch.broadcast_shapes(queries.shape[:-2], keys.shape[:-2], values.shape[:-2])
    except RuntimeError:
        raise ValueError("the batch dimensions (...) of queries, keys and values do not broadcast: "
                         f"{shape_str(queries)}, {shape_str(keys)}, {shape_str(values)}") from None
    scores_shape = torch.Size((*batch, queries.shape[-2], keys.shape[-2]))
    if mask is not None:
        _check_mask(mask, scores_shape, "(..., n_q, n_k)")
    return scores_shape


class AdditiveAttention(nn.Module):
    """Additive (Bahdanau) attention: a(q, k) = w_v^T tanh(W_q q + W_k k [+ b]).

    Queries and keys may have different sizes: both are projected to ``num_hiddens``
    features first. Without the bias ``b`` (the textbook form, ``bias=False``) the score
    is an odd function, a(-q, -k) = -a(q, k); chapter 2 shows what that costs.
    ``forward`` keeps the last weights in ``self.attention_weights``.
    """

    def __init__(self, query_size: int, key_size: int, num_hiddens: int, dropout: float = 0.0,
                 bias: bool = False):
        super().__init__()
        self.W_q = nn.Linear(query_size, num_hiddens, bias=bias)  # its bias is b
        self.W_k = nn.Linear(key_size, num_hiddens, bias=False)
        self.w_v = nn.Linear(num_hiddens, 1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.attention_weights: torch.Tensor | None = None

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """queries (..., n_q, query_size), keys (..., n_k, key_size), values (..., n_k, d_v),
        mask bool broadcastable to (..., n_q, n_k) -> output (..., n_q, d_v)."""
        for name, x, size in (("queries", queries, self.W_q.in_features),
                              ("keys", keys, self.W_k.in_features)):
            check_tensor(name, x, min_ndim=2, expected=f"(..., n, {size})")
            if x.shape[-1] != size:
                raise ValueError(f"{name} must have {size} features (the size given to "
                                 f"AdditiveAttention); got shape {shape_str(x)}")
        check_tensor("values", values, min_ndim=2, expected="(..., n_k, d_v)")
        if keys.shape[-2] != values.shape[-2]:
            raise ValueError(f"keys and values must come in pairs (same n_k): keys {shape_str(keys)}, "
                             f"values {shape_str(values)}")
        q, k = self.W_q(queries), self.W_k(keys)                  # (..., n_q, h), (..., n_k, h)
        features = torch.tanh(q.unsqueeze(-2) + k.unsqueeze(-3))  # (..., n_q, n_k, h)
        scores = self.w_v(features).squeeze(-1)                   # (..., n_q, n_k)
        self.attention_weights = masked_softmax(scores, mask)
        return self.dropout(self.attention_weights) @ values      # (..., n_q, d_v)


def scaled_dot_product_attention(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                                 mask: torch.Tensor | None = None, dropout_p: float = 0.0,
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q K^T / sqrt(d)) V, written out so that the weights can be returned.

    Args:
        queries: (..., n_q, d).  keys: (..., n_k, d).  values: (..., n_k, d_v).
        mask: bool, broadcastable to (..., n_q, n_k); True = may attend.
        dropout_p: dropout on the weights (pass 0 at evaluation time).

    Returns:
        output (..., n_q, d_v) and weights (..., n_q, n_k) (before dropout).
    """
    _check_qkv(queries, keys, values, mask)
    d = queries.shape[-1]
    scores = queries @ keys.transpose(-2, -1) / math.sqrt(d)    # (..., n_q, n_k)
    weights = masked_softmax(scores, mask)
    dropped = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    return dropped @ values, weights                            # (..., n_q, d_v)


def fused_attention(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                    mask: torch.Tensor | None = None, dropout_p: float = 0.0) -> torch.Tensor:
    """The same as :func:`scaled_dot_product_attention`, through PyTorch's fused kernel
    ``F.scaled_dot_product_attention`` (faster, less memory, no weights returned).

    Same shapes and the same mask convention (bool, True = may attend); a query with
    no allowed key gets a zero output, as in the explicit version.
    """
    _check_qkv(queries, keys, values, mask)
    output = F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask,
                                            dropout_p=dropout_p)
    if mask is not None:
        # PyTorch >= 2.5 already returns zeros for fully masked rows; older versions gave
        # NaN. Make the convention explicit either way.
        output = output.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return output
