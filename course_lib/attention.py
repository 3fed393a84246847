"""Attention, from kernel regression to multi-head attention.

Read this file top to bottom; it follows the book:

1. **Attention pooling** (chapter 1): Nadaraya--Watson kernel regression. A query
   ``q`` looks at keys ``k_i`` and returns a weighted average of their values ``v_i``;
   the weights come from a kernel of the distance ``q - k_i``.
2. **Scoring functions** (chapter 2): weights = softmax of a score a(q, k). Masks say
   which keys a query may see; additive attention scores with a small MLP; scaled
   dot-product attention with q . k / sqrt(d) -- explicitly (returning the weights)
   and through PyTorch's fused kernel.
3. **Multi-head attention and positions** (chapter 3): project queries, keys and
   values, split the features into heads, attend per head, concatenate, project
   with W_o. Sinusoidal and learned positional encodings.

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

from ._checks import (
    check_attention_inputs,
    check_floating,
    check_mask,
    check_multihead_inputs,
    check_same_sizes,
    check_size,
    check_tensor,
    shape_str,
)

__all__ = [
    "gaussian_kernel",
    "boxcar_kernel",
    "epanechnikov_kernel",
    "KERNELS",
    "nadaraya_watson",
    "ParametricNadarayaWatson",
    "padding_mask",
    "masked_softmax",
    "AdditiveAttention",
    "scaled_dot_product_attention",
    "fused_attention",
    "split_heads",
    "merge_heads",
    "MultiHeadAttention",
    "sinusoidal_positional_encoding",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEmbedding",
]

# ---------------------------------------------------------------------------
# 1. Attention pooling: Nadaraya--Watson kernel regression (chapter 1)
# ---------------------------------------------------------------------------


def gaussian_kernel(u: torch.Tensor) -> torch.Tensor:
    """K(u) = exp(-u^2 / 2). Never zero: every key gets some weight."""
    return torch.exp(-(u**2) / 2)


def boxcar_kernel(u: torch.Tensor) -> torch.Tensor:
    """K(u) = 1 if |u| <= 1 else 0: a plain average of the keys within one bandwidth."""
    return (u.abs() <= 1).to(u.dtype)


def epanechnikov_kernel(u: torch.Tensor) -> torch.Tensor:
    """K(u) = 3/4 (1 - u^2) for |u| <= 1, else 0: near keys count more, far keys not at all."""
    return 0.75 * (1 - u**2).clamp(min=0)


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
        raise ValueError(
            f"values must have one row per key: keys has shape {shape_str(keys)}, "
            f"values has shape {shape_str(values)}"
        )


def nadaraya_watson(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
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
            raise ValueError(
                f"kernel must be one of {sorted(KERNELS)} or a function; got {kernel!r}"
            )
        kernel_fn = KERNELS[kernel]
    elif callable(kernel):
        kernel_fn = kernel
    else:
        raise TypeError(
            f"kernel must be a name or a function; got {type(kernel).__name__}"
        )
    bandwidth = torch.as_tensor(bandwidth, dtype=queries.dtype, device=queries.device)
    if bandwidth.numel() != 1 or not bool(bandwidth > 0):
        raise ValueError(f"bandwidth must be one positive number; got {bandwidth}")

    u = (queries[:, None] - keys[None, :]) / bandwidth  # (n_q, n_k)
    if kernel_fn is gaussian_kernel:
        # exp(-u^2/2) / sum exp(-u^2/2) is a softmax over keys of the score -u^2/2;
        # the softmax form cannot underflow to 0/0 when h is small.
        weights = torch.softmax(-(u**2) / 2, dim=-1)
    else:
        k = kernel_fn(u)
        weights = k / k.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(k.dtype).tiny)
    predictions = weights @ values  # (n_q,) or (n_q, d_v)
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

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        exclude_self: bool = False,
    ) -> torch.Tensor:
        """queries (n_q,), keys (n_k,), values (n_k,) or (n_k, d_v) -> (n_q,) or (n_q, d_v).

        ``exclude_self=True`` (needs n_q == n_k, query i = key i) hides key i from
        query i: the leave-one-out fit used for training, without which the best
        ``w`` is infinite (every point predicts itself).
        """
        _check_pooling_args(queries, keys, values)
        scores = -(((queries[:, None] - keys[None, :]) * self.w) ** 2) / 2  # (n_q, n_k)
        if exclude_self:
            if queries.shape[0] != keys.shape[0]:
                raise ValueError(
                    "exclude_self=True needs as many queries as keys "
                    f"(query i is key i); got {queries.shape[0]} and {keys.shape[0]}"
                )
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
    max_len = check_size("max_len", max_len, minimum=0)
    if lengths.numel() and (lengths.min() < 0 or lengths.max() > max_len):
        raise ValueError(
            f"lengths must lie in [0, max_len={max_len}]; got {lengths.tolist()}"
        )
    return torch.arange(max_len, device=lengths.device) < lengths[:, None]


def masked_softmax(
    scores: torch.Tensor, mask: torch.Tensor | None = None, dim: int = -1
) -> torch.Tensor:
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
    check_mask("mask", mask, broadcasts_to=scores.shape, expected="(..., n_q, n_k)")
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    # A fully masked row is now constant, so its softmax is uniform; zero it out.
    return torch.softmax(scores, dim=dim).masked_fill(~mask, 0.0)


class AdditiveAttention(nn.Module):
    """Additive (Bahdanau) attention: a(q, k) = w_v^T tanh(W_q q + W_k k [+ b]).

    Queries and keys may have different sizes: both are projected to ``num_hiddens``
    features first. Without the bias ``b`` (the textbook form, ``bias=False``) the score
    is an odd function, a(-q, -k) = -a(q, k); chapter 2 shows what that costs.
    ``forward`` keeps the last weights in ``self.attention_weights``.
    """

    def __init__(
        self,
        query_size: int,
        key_size: int,
        num_hiddens: int,
        dropout: float = 0.0,
        bias: bool = False,
    ):
        super().__init__()
        self.W_q = nn.Linear(query_size, num_hiddens, bias=bias)  # its bias is b
        self.W_k = nn.Linear(key_size, num_hiddens, bias=False)
        self.w_v = nn.Linear(num_hiddens, 1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.attention_weights: torch.Tensor | None = None

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """queries (..., n_q, query_size), keys (..., n_k, key_size), values (..., n_k, d_v),
        mask bool broadcastable to (..., n_q, n_k) -> output (..., n_q, d_v)."""
        self._check_inputs(queries, keys, values)
        q, k = self.W_q(queries), self.W_k(keys)  # (..., n_q, h), (..., n_k, h)
        features = torch.tanh(q.unsqueeze(-2) + k.unsqueeze(-3))  # (..., n_q, n_k, h)
        scores = self.w_v(features).squeeze(-1)  # (..., n_q, n_k)
        self.attention_weights = masked_softmax(scores, mask)
        return self.dropout(self.attention_weights) @ values  # (..., n_q, d_v)

    def _check_inputs(self, queries, keys, values) -> None:
        for name, x, size in (
            ("queries", queries, self.W_q.in_features),
            ("keys", keys, self.W_k.in_features),
        ):
            check_tensor(name, x, min_ndim=2, expected=f"(..., n, {size})")
            if x.shape[-1] != size:
                raise ValueError(
                    f"{name} must have {size} features (the size given to "
                    f"AdditiveAttention); got shape {shape_str(x)}"
                )
        check_tensor("values", values, min_ndim=2, expected="(..., n_k, d_v)")
        if keys.shape[-2] != values.shape[-2]:
            raise ValueError(
                f"keys and values must come in pairs (same n_k): keys {shape_str(keys)}, "
                f"values {shape_str(values)}"
            )


def scaled_dot_product_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q K^T / sqrt(d)) V, written out so that the weights can be returned.

    Args:
        queries: (..., n_q, d).  keys: (..., n_k, d).  values: (..., n_k, d_v).
        mask: bool, broadcastable to (..., n_q, n_k); True = may attend.
        dropout_p: dropout on the weights (pass 0 at evaluation time).

    Returns:
        output (..., n_q, d_v) and weights (..., n_q, n_k) (before dropout).

    A key that no query may attend to (padding, typically) is ignored entirely, even
    when its key or value holds NaN or inf; :func:`fused_attention` does the same.
    """
    check_attention_inputs(queries, keys, values, mask)
    keys, values = _ignore_unseen_keys(keys, values, mask)
    d = queries.shape[-1]
    scores = queries @ keys.transpose(-2, -1) / math.sqrt(d)  # (..., n_q, n_k)
    weights = masked_softmax(scores, mask)
    dropped = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    return dropped @ values, weights  # (..., n_q, d_v)


def fused_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """The same as :func:`scaled_dot_product_attention`, through PyTorch's fused kernel
    ``F.scaled_dot_product_attention`` (faster, less memory, no weights returned).

    Same shapes and the same mask convention (bool, True = may attend); a query with
    no allowed key gets a zero output, as in the explicit version.
    """
    check_attention_inputs(queries, keys, values, mask)
    keys, values = _ignore_unseen_keys(keys, values, mask)
    output = F.scaled_dot_product_attention(
        queries, keys, values, attn_mask=mask, dropout_p=dropout_p
    )
    if mask is None:
        return output
    # Recent PyTorch versions already return zeros for fully masked rows; older ones
    # (and some GPU kernels) give NaN. Make the convention explicit either way (without
    # asking the GPU whether any row is fully masked: that would stop it at every call).
    return output.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)


def _ignore_unseen_keys(keys, values, mask):
    """Zero the keys and values that no query may attend to (padding, typically), so that
    whatever they hold -- even NaN or inf -- cannot reach the output (0 x NaN is NaN)."""
    if mask is None:
        return keys, values
    unseen = ~mask.any(dim=-2).unsqueeze(-1)  # (..., n_k, 1)
    return torch.where(unseen, 0.0, keys), torch.where(unseen, 0.0, values)


# ---------------------------------------------------------------------------
# 3. Multi-head attention and positional encoding (chapter 3)
# ---------------------------------------------------------------------------


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, T, D) -> (B, H, T, D/H). Head h holds features h*D/H ... (h+1)*D/H - 1,
    the layout ``nn.MultiheadAttention`` uses."""
    check_tensor("x", x, ndim=3, expected="(batch, tokens, d_model)")
    num_heads = check_size("num_heads", num_heads)
    if x.shape[-1] % num_heads:
        raise ValueError(
            f"num_heads must be a positive integer dividing d_model={x.shape[-1]}; got {num_heads}"
        )
    batch, tokens, d_model = x.shape
    return x.view(batch, tokens, num_heads, d_model // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, D/H) -> (B, T, D): the inverse of :func:`split_heads` (concatenate heads)."""
    check_tensor("x", x, ndim=4, expected="(batch, heads, tokens, head_dim)")
    batch, heads, tokens, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, tokens, heads * head_dim)


class MultiHeadAttention(nn.Module):
    """Multi-head attention, numerically equal to ``nn.MultiheadAttention(batch_first=True)``.

        head_h = Attention(Q W_q^h, K W_k^h, V W_v^h)      h = 1 .. H
        MultiHead(Q, K, V) = Concat(head_1, ..., head_H) W_o

    The three projections W_q, W_k, W_v (each d_model x d_model, all heads side by side)
    are stored stacked in one ``in_proj`` layer, as PyTorch does, so self-attention
    projects the input once; ``out_proj`` is W_o.

    **Masks are boolean and True means "may attend"** -- the opposite of
    ``nn.MultiheadAttention``, where True means "ignore".
    """

    def __init__(
        self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True
    ):
        super().__init__()
        d_model = check_size("d_model", d_model)
        num_heads = check_size("num_heads", num_heads)
        if d_model % num_heads:
            raise ValueError(
                f"d_model ({d_model}) must be divisible by num_heads ({num_heads}): "
                "each head gets d_model / num_heads features"
            )
        self.d_model, self.num_heads = d_model, num_heads
        self.head_dim = d_model // num_heads
        self.dropout = dropout
        self.in_proj = nn.Linear(d_model, 3 * d_model, bias=bias)  # [W_q; W_k; W_v]
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)  # W_o
        # the initialisation of nn.MultiheadAttention (out_proj keeps nn.Linear's)
        nn.init.xavier_uniform_(self.in_proj.weight)
        if bias:
            nn.init.zeros_(self.in_proj.bias)
            nn.init.zeros_(self.out_proj.bias)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from ``query`` (B, n_q, D) to ``key``/``value`` (B, n_k, D).

        ``key`` and ``value`` default to ``query`` (self-attention).
        ``key_padding_mask``: (B, n_k) bool, True at real tokens.
        ``attn_mask``: (n_q, n_k), (B, n_q, n_k) or (B, H, n_q, n_k) bool, True = may attend
        (e.g. a causal mask).
        Returns the output (B, n_q, D) and, if ``need_weights``, the per-head weights
        (B, H, n_q, n_k) (computed by the explicit path; otherwise ``None`` and the fused
        kernel is used).
        """
        key = query if key is None else key
        value = key if value is None else value
        check_multihead_inputs(self, query, key, value, key_padding_mask, attn_mask)
        mask = self._mask(key_padding_mask, attn_mask)  # (B, H or 1, n_q or 1, n_k)

        q, k, v = self._project(query, key, value)  # (B, T, D) each
        q, k, v = (split_heads(t, self.num_heads) for t in (q, k, v))  # (B, H, T, D/H)
        dropout_p = self.dropout if self.training else 0.0
        if need_weights:
            heads, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p)
        else:
            heads, weights = fused_attention(q, k, v, mask, dropout_p), None
        return self.out_proj(merge_heads(heads)), weights  # (B, n_q, D)

    def _project(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor):
        """Q W_q, K W_k, V W_v for all heads at once: (B, T, D) each."""
        D = self.d_model
        if query is key and key is value:  # self-attention: one matmul
            return F.linear(query, self.in_proj.weight, self.in_proj.bias).chunk(3, -1)
        q = self._in_proj(query, slice(0, D))
        if key is value:  # cross-attention on a memory: K and V in one matmul
            return (q, *self._in_proj(key, slice(D, 3 * D)).chunk(2, dim=-1))
        return (
            q,
            self._in_proj(key, slice(D, 2 * D)),
            self._in_proj(value, slice(2 * D, 3 * D)),
        )

    def _in_proj(self, x: torch.Tensor, rows: slice) -> torch.Tensor:
        """x W^T + b with the rows ``rows`` of the stacked [W_q; W_k; W_v] and its bias."""
        bias = self.in_proj.bias
        return F.linear(
            x, self.in_proj.weight[rows], None if bias is None else bias[rows]
        )

    def _mask(self, key_padding_mask, attn_mask) -> torch.Tensor | None:
        """The padding and attention masks as one, broadcastable to (B, H, n_q, n_k)."""
        mask = None
        if key_padding_mask is not None:
            mask = key_padding_mask[:, None, None, :]  # (B, 1, 1, n_k)
        if attn_mask is not None:
            if attn_mask.dim() == 3:
                attn_mask = attn_mask[:, None]  # (B, 1, n_q, n_k)
            mask = attn_mask if mask is None else mask & attn_mask
        return mask

    # -- the two halves of forward, for a key-value cache (chapter 4) -------------------
    def project_keys_values(
        self, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """key, value (B, n_k, D) -> per-head keys and values (B, H, n_k, D/H) each: what a
        key-value cache stores, so that a decoder projects each position only once."""
        D = self.d_model
        k = self._in_proj(key, slice(D, 2 * D))
        v = self._in_proj(value, slice(2 * D, 3 * D))
        return split_heads(k, self.num_heads), split_heads(v, self.num_heads)

    def attend_to_projected(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """query (B, n_q, D) attends to per-head keys and values (B, H, n_k, D/H) made by
        :meth:`project_keys_values`; key_padding_mask (B, n_k) -> output (B, n_q, D).
        Without dropout: it is for decoding loops."""
        q = split_heads(self._in_proj(query, slice(0, self.d_model)), self.num_heads)
        mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
        return self.out_proj(merge_heads(fused_attention(q, keys, values, mask)))

    @torch.no_grad()
    def load_from_torch(self, module: nn.MultiheadAttention) -> "MultiHeadAttention":
        """Copy the weights of an ``nn.MultiheadAttention`` with the same sizes."""
        check_same_sizes(self, module)
        self.in_proj.weight.copy_(module.in_proj_weight)
        self.out_proj.weight.copy_(module.out_proj.weight)
        if self.in_proj.bias is not None:
            self.in_proj.bias.copy_(module.in_proj_bias)
            self.out_proj.bias.copy_(module.out_proj.bias)
        return self

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, num_heads={self.num_heads}, dropout={self.dropout}"


def sinusoidal_positional_encoding(num_positions: int, d_model: int) -> torch.Tensor:
    """(num_positions, d_model): PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(...)."""
    num_positions, d_model = (
        check_size("num_positions", num_positions),
        check_size("d_model", d_model),
    )
    if d_model < 2 or d_model % 2:
        raise ValueError(
            f"d_model must be an even integer >= 2 (sin/cos pairs); got {d_model!r}"
        )
    position = torch.arange(num_positions, dtype=torch.float32)[:, None]  # (P, 1)
    # (D/2,)
    frequency = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    angle = position * frequency  # (P, D/2)
    pe = torch.empty(num_positions, d_model)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(angle), torch.cos(angle)
    return pe


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the sinusoidal table to token embeddings: x (B, T, D) -> x + PE[:T] (then dropout).

    The table is a registered buffer: ``.to(device)`` moves it, it is not a parameter,
    and it is not saved in the state dict (it is recomputed from the sizes).
    """

    def __init__(self, d_model: int, max_len: int = 1024, dropout: float = 0.0):
        super().__init__()
        self.register_buffer(
            "pe", sinusoidal_positional_encoding(max_len, d_model), persistent=False
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """x (B, T, D) holds positions start ... start + T - 1 (``start`` > 0 when a
        decoder adds one new position at a time)."""
        check_tensor(
            "x", x, ndim=3, expected=f"(batch, tokens, d_model={self.pe.shape[1]})"
        )
        if x.shape[-1] != self.pe.shape[1]:
            raise ValueError(
                f"x must have d_model={self.pe.shape[1]} features; got shape {shape_str(x)}"
            )
        if start + x.shape[1] > self.pe.shape[0]:
            raise ValueError(
                f"the sequence reaches position {start + x.shape[1] - 1} but the positional "
                f"table has only {self.pe.shape[0]} (max_len); build it with a larger max_len"
            )
        return self.dropout(x + self.pe[start : start + x.shape[1]].to(x.dtype))


class LearnedPositionalEmbedding(nn.Module):
    """Adds a learned vector per position (as BERT, GPT-2 and ViT do): x + E_pos[:T]."""

    def __init__(self, d_model: int, max_len: int = 1024, dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor(
            "x",
            x,
            ndim=3,
            expected=f"(batch, tokens, d_model={self.embedding.shape[1]})",
        )
        if (
            x.shape[1] > self.embedding.shape[0]
            or x.shape[-1] != self.embedding.shape[1]
        ):
            raise ValueError(
                f"x of shape {shape_str(x)} does not fit the table "
                f"(max_len={self.embedding.shape[0]}, d_model={self.embedding.shape[1]})"
            )
        return self.dropout(x + self.embedding[: x.shape[1]])
