"""Exercises of chapter 2: masked softmax and bilinear attention with a padding mask."""

from __future__ import annotations

import torch

from .. import attention
from ._core import Case, Exercise, Mistake, register
from ._predictions import Prediction, predict

CHAPTER = "02_scoring_functions"


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------
# ex-masked-softmax
# ---------------------------------------------------------------------------


def _softmax_case(
    shape,
    mask_shape,
    seed,
    fully_masked_row=False,
    dtype=torch.float32,
    scale=3.0,
    offset=0.0,
):
    def make():
        g = _generator(seed)
        scores = (scale * torch.randn(*shape, generator=g) + offset).to(dtype)
        mask = torch.rand(*mask_shape, generator=g) > 0.4
        mask[..., 0] = True  # every row keeps at least one key ...
        if fully_masked_row:
            mask[(0,) * (mask.dim() - 1)] = (
                False  # ... except the first, which keeps none
            )
        return scores, mask

    return make


def _ms_wrong_axis(scores, mask):
    s = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(s, dim=-2).masked_fill(~mask, 0.0)


def _ms_after_softmax(scores, mask):
    return torch.softmax(scores, dim=-1) * mask


def _ms_inverted(scores, mask):
    return attention.masked_softmax(scores, ~mask)


def _ms_minus_inf(scores, mask):
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


def _ms_uniform_rows(scores, mask):
    return torch.softmax(
        scores.masked_fill(~mask, torch.finfo(scores.dtype).min), dim=-1
    )


def _ms_big_negative_fill(scores, mask):
    weights = torch.softmax(scores.masked_fill(~mask, -1e9), dim=-1)
    return weights.masked_fill(~mask, 0.0)


def _ms_fixed_fill(value, zero_masked):
    def wrong(scores, mask):
        weights = torch.softmax(scores.masked_fill(~mask, value), dim=-1)
        return weights.masked_fill(~mask, 0.0) if zero_masked else weights

    return wrong


def _ms_no_mask(scores, mask):
    return torch.softmax(scores, dim=-1)


register(
    Exercise(
        id="ex-masked-softmax",
        chapter=CHAPTER,
        title="masked softmax",
        signature="masked_softmax(scores, mask) -> weights shaped like scores",
        reference=lambda scores, mask: attention.masked_softmax(scores, mask),
        stands_for=("course_lib.attention.masked_softmax",),
        cases=[
            Case(
                "scores (2, 3, 5), mask (2, 3, 5)",
                _softmax_case((2, 3, 5), (2, 3, 5), seed=0),
            ),
            Case(
                "a padding mask (2, 1, 6) broadcast over 4 queries",
                _softmax_case((2, 4, 6), (2, 1, 6), seed=1),
            ),
            Case(
                "a row whose keys are all masked",
                _softmax_case((2, 3, 4), (2, 3, 4), seed=2, fully_masked_row=True),
            ),
            Case(
                "float16 scores with a fully masked row",
                _softmax_case(
                    (3, 5), (3, 5), seed=3, fully_masked_row=True, dtype=torch.float16
                ),
            ),
            Case(
                "scores around -50 000 (minus a squared distance, say)",
                _softmax_case((2, 3, 6), (2, 3, 6), seed=4, scale=1e3, offset=-5e4),
            ),
        ],
        mistakes=[
            Mistake(
                "the softmax runs over the queries (dim=-2); it must run over the keys (dim=-1), "
                "so that each query's weights sum to 1.",
                _ms_wrong_axis,
            ),
            Mistake(
                "the mask is applied after the softmax: masked keys still took part in the "
                "normalisation, so the kept weights no longer sum to 1. Mask the scores first.",
                _ms_after_softmax,
            ),
            Mistake(
                "the mask is inverted: here True means 'may attend' (PyTorch's key_padding_mask "
                "uses the opposite convention).",
                _ms_inverted,
            ),
            Mistake(
                "a row whose keys are all masked gives NaN: filling with -inf makes its softmax 0/0. "
                "Fill with torch.finfo(scores.dtype).min and zero the masked weights afterwards.",
                _ms_minus_inf,
            ),
            Mistake(
                "a row whose keys are all masked gives uniform weights 1/n_k; it must give zeros "
                "(no key may be attended). Zero the masked weights after the softmax.",
                _ms_uniform_rows,
            ),
            Mistake("the mask is ignored.", _ms_no_mask),
            Mistake(
                "a fixed fill such as -1e6 or -1e9 does not fit in float16 (whose "
                "smallest number is about -65504): fill with "
                "torch.finfo(scores.dtype).min, the smallest number of the scores' dtype.",
                _ms_big_negative_fill,
                error="overflow|cannot be converted",
            ),
            Mistake(
                "a fixed fill such as -1e9 does not fit in float16 (whose smallest "
                "number is about -65504), and a row whose keys are all masked gets "
                "uniform weights instead of zeros: fill with "
                "torch.finfo(scores.dtype).min and zero the masked weights after the "
                "softmax.",
                _ms_fixed_fill(-1e9, zero_masked=False),
                error="overflow|cannot be converted",
            ),
            Mistake(
                "a fixed fill such as -1e4 is not below every score: where the scores "
                "are lower still, the masked keys win the softmax. Fill with "
                "torch.finfo(scores.dtype).min, below any score of that dtype.",
                _ms_fixed_fill(-1e4, zero_masked=True),
            ),
        ],
    )
)


# ---------------------------------------------------------------------------
# ex-bilinear-attention: Luong et al.'s "general" score, a(q, k) = q^T W k
# ---------------------------------------------------------------------------


def bilinear_attention(queries, keys, values, W, mask=None):
    """queries (B, n_q, d_q), keys (B, n_k, d_k), values (B, n_k, d_v), W (d_q, d_k),
    mask (B, n_k) bool, True = may attend -> (output (B, n_q, d_v), weights)."""
    scores = queries @ W @ keys.transpose(1, 2)  # (B, n_q, n_k)
    if mask is None:
        mask = torch.ones(keys.shape[:2], dtype=torch.bool)
    weights = attention.masked_softmax(scores, mask[:, None, :])
    return weights @ values, weights


def _bilinear_with(score, softmax=attention.masked_softmax, flip_mask=False):
    def wrong(queries, keys, values, W, mask=None):
        scores = score(queries, keys, W)
        if mask is None:
            mask = torch.ones(keys.shape[:2], dtype=torch.bool)
        elif flip_mask:
            mask = ~mask
        weights = softmax(scores, mask[:, None, :])
        return weights @ values, weights

    return wrong


_SCALED = (
    "the scores are scaled by √d; this exercise's score, qᵀ W k, has no scale "
    "(W can learn one)."
)


def _general_score(queries, keys, W):
    return queries @ W @ keys.transpose(1, 2)


def _bilinear_case(b, n_q, n_k, d_q, d_k, d_v, seed, with_mask=True):
    def make():
        g = _generator(seed)
        queries = torch.randn(b, n_q, d_q, generator=g)
        keys = torch.randn(b, n_k, d_k, generator=g)
        values = torch.randn(b, n_k, d_v, generator=g)
        W = torch.randn(d_q, d_k, generator=g) / d_q**0.5
        if not with_mask:
            return queries, keys, values, W
        # a padding mask: the first 1 ... n_k - 1 keys of each sentence are real
        lengths = torch.randint(1, n_k, (b,), generator=g)
        mask = torch.arange(n_k) < lengths[:, None]
        return queries, keys, values, W, mask

    return make


register(
    Exercise(
        id="ex-bilinear-attention",
        chapter=CHAPTER,
        title="bilinear ('general') attention with a padding mask",
        signature=(
            "bilinear_attention(queries, keys, values, W, mask=None): (B, n_q, d_q), "
            "(B, n_k, d_k), (B, n_k, d_v), (d_q, d_k), (B, n_k) bool -> "
            "(output (B, n_q, d_v), weights (B, n_q, n_k))"
        ),
        reference=bilinear_attention,
        cases=[
            Case(
                "d_q = d_k = 4, W square, no mask",
                _bilinear_case(2, 3, 5, 4, 4, 6, seed=0, with_mask=False),
            ),
            Case(
                "d_q = d_k = 5, a padding mask",
                _bilinear_case(2, 4, 6, 5, 5, 3, seed=1),
            ),
            Case(
                "queries of size 6, keys of size 3 (W is 6 x 3), a padding mask",
                _bilinear_case(3, 2, 5, 6, 3, 4, seed=2),
            ),
        ],
        mistakes=[
            Mistake(
                "W is used transposed: the score is qᵀ W k, so queries @ W (size d_k) then "
                "@ keys.transpose(1, 2).",
                _bilinear_with(lambda q, k, W: q @ W.T @ k.transpose(1, 2)),
            ),
            Mistake(
                _SCALED,
                _bilinear_with(
                    lambda q, k, W: _general_score(q, k, W) / q.shape[-1] ** 0.5
                ),
            ),
            Mistake(  # the same mistake, with the keys' size
                _SCALED,
                _bilinear_with(
                    lambda q, k, W: _general_score(q, k, W) / k.shape[-1] ** 0.5
                ),
            ),
            Mistake(
                "the mask is inverted: True means 'may attend'.",
                _bilinear_with(_general_score, flip_mask=True),
            ),
            Mistake(
                "the padding mask is ignored: padded keys still get weight.",
                _bilinear_with(_general_score, softmax=lambda s, m: s.softmax(-1)),
            ),
            Mistake(
                "the softmax runs over the queries (dim 1); each query's weights over the "
                "keys (the last dimension) must sum to 1.",
                _bilinear_with(_general_score, softmax=_ms_wrong_axis),
            ),
        ],
        output_names=("output", "weights"),
    )
)


predict(
    Prediction(
        id="pred-additive-symmetry",
        chapter=CHAPTER,
        question="Which of the three scoring functions learn the look-up task?",
        choices={
            "a": "all three",
            "b": "the dot product and the additive attention with a bias, "
            "not the textbook additive attention",
            "c": "only the dot product",
            "d": "another pattern",
        },
        answer="b",
        why=(
            "without a bias, tanh is odd, so the additive score is odd: "
            "a(-q, -k) = -a(q, k). The data is symmetric (negate a query and its keys: "
            "an equally likely example with the same answer), and the odd score ranks "
            "the keys of the mirror image in reverse, so no weights can be right on "
            "both: accuracy at most 50%. One bias vector breaks the symmetry; the dot "
            "product is a similarity and needs no help."
        ),
    )
)
