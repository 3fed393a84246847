"""Attention, from kernel regression to multi-head attention.

Read this file top to bottom; it follows the book:

1. **Attention pooling** (chapter 1): Nadaraya--Watson kernel regression. A query
   ``q`` looks at keys ``k_i`` and returns a weighted average of their values ``v_i``;
   the weights come from a kernel of the distance ``q - k_i``.

Shapes are written as ``(n_q,)``, ``(n_k, d_v)`` ...: ``n_q`` queries, ``n_k`` keys
(and as many values), ``d_v`` features per value.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ._checks import check_floating, check_tensor, shape_str

__all__ = [
    "gaussian_kernel", "boxcar_kernel", "epanechnikov_kernel", "KERNELS",
    "nadaraya_watson", "ParametricNadarayaWatson",
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
