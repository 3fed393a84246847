"""Exercises of chapter 3: ALiBi's distance bias and multi-head attention from its weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._core import Case, Exercise, Mistake, register
from ._predictions import Prediction, predict

CHAPTER = "03_multihead_attention"


# ---------------------------------------------------------------------------
# ex-alibi-bias: positions as a per-head penalty on distant keys (Press et al., 2022)
# ---------------------------------------------------------------------------


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """m_h = 2^(-8 h / H) for heads h = 1 .. H: a geometric sequence from 2^(-8/H)."""
    return 2.0 ** (-8.0 * torch.arange(1, num_heads + 1) / num_heads)


def alibi_bias(num_heads: int, size: int) -> torch.Tensor:
    """(H, size, size): bias[h, i, j] = -m_h |i - j|, added to head h's scores."""
    position = torch.arange(size)
    distance = (position[:, None] - position[None, :]).abs()  # (T, T)
    return -alibi_slopes(num_heads)[:, None, None] * distance


def _alibi_with(slopes=alibi_slopes, distance=lambda i, j: (i - j).abs(), sign=-1.0):
    def wrong(num_heads, size):
        position = torch.arange(size)
        d = distance(position[:, None], position[None, :]).float()
        return sign * slopes(num_heads)[:, None, None] * d

    return wrong


register(
    Exercise(
        id="ex-alibi-bias",
        chapter=CHAPTER,
        title="ALiBi: a per-head linear penalty on distance",
        signature=(
            "alibi_bias(num_heads, size) -> (num_heads, size, size), "
            "bias[h, i, j] = -m_h |i - j| with m_h = 2^(-8 (h + 1) / num_heads)"
        ),
        reference=alibi_bias,
        cases=[
            Case("4 heads, 5 positions", lambda: (4, 5)),
            Case("8 heads, 3 positions", lambda: (8, 3)),
            Case("2 heads, 6 positions", lambda: (2, 6)),
            Case("1 head, 4 positions", lambda: (1, 4)),
        ],
        mistakes=[
            Mistake(
                "the bias has the wrong sign: it must lower the scores of distant keys, "
                "-m_h |i - j|.",
                _alibi_with(sign=1.0),
            ),
            Mistake(
                "the slopes run the wrong way: the first head has the steepest slope, "
                "m_1 = 2^(-8/H), and each next head a gentler one.",
                _alibi_with(slopes=lambda h: alibi_slopes(h).flip(0)),
            ),
            Mistake(
                "the slopes start at 1 (h = 0): with H heads they are 2^(-8/H), "
                "2^(-16/H), ..., 2^(-8) (h = 1 .. H).",
                _alibi_with(slopes=lambda h: 2.0 ** (-8.0 * torch.arange(h) / h)),
            ),
            Mistake(
                "the distance has a sign, i - j: keys on either side of the query are "
                "penalised by their distance, |i - j|.",
                _alibi_with(distance=lambda i, j: i - j),
            ),
            Mistake(
                "every head has the same slope: ALiBi gives head h its own, "
                "m_h = 2^(-8 h / H), so that heads look at different ranges.",
                _alibi_with(slopes=lambda h: torch.ones(h)),
            ),
        ],
    )
)


# ---------------------------------------------------------------------------
# ex-mha-forward: multi-head attention from four weight matrices
# ---------------------------------------------------------------------------


def _torch_mha(x_q, x_kv, w_q, w_k, w_v, w_o, num_heads, key_padding_mask=None):
    """PyTorch's own multi-head attention with these weights: the reference. PyTorch
    computes x @ W.T, so it is given the transposes; its mask is True = ignore."""
    d = x_q.shape[-1]
    out, _ = F.multi_head_attention_forward(
        x_q.transpose(0, 1),  # PyTorch's functional form is sequence-first
        x_kv.transpose(0, 1),
        x_kv.transpose(0, 1),
        d,
        num_heads,
        in_proj_weight=torch.cat([w_q.T, w_k.T, w_v.T]),
        in_proj_bias=None,
        bias_k=None,
        bias_v=None,
        add_zero_attn=False,
        dropout_p=0.0,
        out_proj_weight=w_o.T,
        out_proj_bias=None,
        key_padding_mask=None if key_padding_mask is None else ~key_padding_mask,
        need_weights=False,
    )
    return out.transpose(0, 1)


def _split(x, num_heads):
    b, t, d = x.shape
    return x.view(b, t, num_heads, d // num_heads).transpose(1, 2)


def _merge(x):
    b, h, t, dh = x.shape
    return x.transpose(1, 2).reshape(b, t, h * dh)


def _mha_with(
    split=_split,
    merge=_merge,
    scale=lambda d, h: (d // h) ** 0.5,
    flip_mask=False,
    project_out=True,
    transpose_weights=False,
):
    """A multi-head attention with one typical mistake switched on."""

    def wrong(x_q, x_kv, w_q, w_k, w_v, w_o, num_heads, key_padding_mask=None):
        if transpose_weights:
            w_q, w_k, w_v, w_o = w_q.T, w_k.T, w_v.T, w_o.T
        q, k, v = (
            split(x @ w, num_heads) for x, w in ((x_q, w_q), (x_kv, w_k), (x_kv, w_v))
        )
        scores = q @ k.transpose(-2, -1) / scale(x_q.shape[-1], num_heads)
        if key_padding_mask is not None:
            keep = ~key_padding_mask if flip_mask else key_padding_mask
            scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
        heads = merge(scores.softmax(-1) @ v)
        return heads @ w_o if project_out else heads

    return wrong


def _interleaved(x, num_heads):
    b, t, d = x.shape
    return x.view(b, t, d // num_heads, num_heads).permute(0, 3, 1, 2)


def _mha_case(b, t_q, t_k, d, num_heads, seed, self_attention=False, mask=False):
    def make():
        g = torch.Generator().manual_seed(seed)
        x_q = torch.randn(b, t_q, d, generator=g)
        x_kv = x_q if self_attention else torch.randn(b, t_k, d, generator=g)
        weights = [torch.randn(d, d, generator=g) / d**0.5 for _ in range(4)]
        if not mask:
            return (x_q, x_kv, *weights, num_heads)
        keep = torch.rand(b, x_kv.shape[1], generator=g) > 0.4
        keep[:, 0] = True  # every sentence keeps a key ...
        # ... and pads one, so that an inverted mask keeps a key too: no row is fully
        # masked, where PyTorch versions differ (NaN, or the fused kernel's 0)
        keep[:, -1] = False
        return (x_q, x_kv, *weights, num_heads, keep)

    return make


register(
    Exercise(
        id="ex-mha-forward",
        chapter=CHAPTER,
        title="multi-head attention, equal to nn.MultiheadAttention",
        signature=(
            "multi_head_attention(x_q, x_kv, w_q, w_k, w_v, w_o, num_heads, "
            "key_padding_mask=None): (B, Tq, D), (B, Tk, D), four (D, D), int, "
            "(B, Tk) bool -> (B, Tq, D)"
        ),
        reference=_torch_mha,
        stands_for=(
            "torch.nn.MultiheadAttention",
            "torch.nn.functional.multi_head_attention_forward",
            "course_lib.attention.MultiHeadAttention",
        ),
        cases=[
            Case(
                "self-attention, B=2, T=5, D=8, 2 heads",
                _mha_case(2, 5, 5, 8, 2, seed=0, self_attention=True),
            ),
            Case(
                "cross-attention, Tq=3, Tk=6, D=12, 3 heads",
                _mha_case(2, 3, 6, 12, 3, seed=1),
            ),
            Case(
                "cross-attention with a key padding mask, D=16, 4 heads",
                _mha_case(3, 4, 7, 16, 4, seed=2, mask=True),
            ),
            Case("one head, D=6", _mha_case(1, 4, 4, 6, 1, seed=3, mask=True)),
        ],
        mistakes=[
            Mistake(
                "the scores are divided by √D; each head works in D/H dimensions, so "
                "divide by √(D/H).",
                _mha_with(scale=lambda d, h: d**0.5),
            ),
            Mistake(
                "the heads are interleaved (head h gets features h, h+H, ...); head h "
                "holds the block h·D/H ... (h+1)·D/H - 1: view as (B, T, H, D/H), then "
                "transpose(1, 2).",
                _mha_with(split=_interleaved),
            ),
            Mistake(
                "a plain reshape to (B, H, T, D/H) mixes tokens and heads: view as "
                "(B, T, H, D/H) first, then transpose dimensions 1 and 2.",
                _mha_with(  # usually undone the same way: a plain reshape back
                    split=lambda x, h: x.reshape(x.shape[0], h, x.shape[1], -1),
                    merge=lambda x: x.reshape(x.shape[0], x.shape[2], -1),
                ),
            ),
            Mistake(
                "the heads are merged with a plain reshape of (B, H, T, D/H), which "
                "mixes tokens and heads: transpose(1, 2) back to (B, T, H, D/H) first.",
                _mha_with(merge=lambda x: x.reshape(x.shape[0], x.shape[2], -1)),
            ),
            Mistake(
                "the key padding mask is inverted: True means 'may attend' in this book "
                "(PyTorch's key_padding_mask uses True = ignore).",
                _mha_with(flip_mask=True),
            ),
            Mistake(
                "the output projection w_o is missing: the merged heads are multiplied by "
                "w_o at the end.",
                _mha_with(project_out=False),
            ),
            Mistake(
                "the weights are applied as x @ w.T (the nn.Linear layout); here they are "
                "(D_in, D_out) matrices: x @ w.",
                _mha_with(transpose_weights=True),
            ),
        ],
    )
)


predict(
    Prediction(
        id="pred-one-head",
        chapter=CHAPTER,
        question=(
            "Each token must output both its neighbours. One head of 32 features or two "
            "heads of 16 (the same parameters): how does the one-head model do?"
        ),
        choices={
            "a": "as well as two heads",
            "b": "somewhat worse",
            "c": "it cannot solve it: its error stays far above the two-head model's",
        },
        answer="c",
        why=(
            "a head has one softmax distribution per query. To fetch both neighbours it "
            "must spread its weight over the two, and then it hands over their average: "
            "the read-out cannot tell x_{t-1} from x_{t+1}. Two heads fetch one "
            "neighbour each. Width alone does not buy this; separate distributions do."
        ),
    )
)
