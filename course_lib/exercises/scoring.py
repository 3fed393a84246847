"""Exercises of chapter 2: masked softmax and scaled dot-product attention."""

from __future__ import annotations

import math

import torch

from .. import attention
from ._core import Case, Exercise, Mistake, register

CHAPTER = "02_scoring_functions"


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------
# ex-masked-softmax
# ---------------------------------------------------------------------------


def _softmax_case(shape, mask_shape, seed, fully_masked_row=False, dtype=torch.float32):
    def make():
        g = _generator(seed)
        scores = (3 * torch.randn(*shape, generator=g)).to(dtype)
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


def _ms_no_mask(scores, mask):
    return torch.softmax(scores, dim=-1)


register(
    Exercise(
        id="ex-masked-softmax",
        chapter=CHAPTER,
        title="masked softmax",
        signature="masked_softmax(scores, mask) -> weights shaped like scores",
        reference=lambda scores, mask: attention.masked_softmax(scores, mask),
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
        ],
    )
)


# ---------------------------------------------------------------------------
# ex-sdpa
# ---------------------------------------------------------------------------


def _sdpa_case(
    q_shape, k_shape, v_shape, mask_shape=None, seed=0, fully_masked_row=False
):
    def make():
        g = _generator(seed)
        q, k, v = (torch.randn(*s, generator=g) for s in (q_shape, k_shape, v_shape))
        if mask_shape is None:
            return q, k, v
        mask = torch.rand(*mask_shape, generator=g) > 0.4
        mask[..., 0] = True
        if fully_masked_row:
            mask[(0,) * (mask.dim() - 1)] = False
        return q, k, v, mask

    return make


def _sdpa_reference(q, k, v, mask=None):
    return attention.scaled_dot_product_attention(q, k, v, mask)


def _scores(q, k, scale):
    return q @ k.transpose(-2, -1) / scale


def _keep_all(scores, mask):
    return (
        torch.ones_like(scores, dtype=torch.bool)
        if mask is None
        else mask.expand_as(scores)
    )


def _attend_with(softmax, scale=lambda d: math.sqrt(d)):
    """A wrong attention built from a (possibly wrong) masked softmax and scale."""

    def wrong(q, k, v, mask=None):
        scores = _scores(q, k, scale(q.shape[-1]))
        weights = softmax(scores, _keep_all(scores, mask))
        return weights @ v, weights

    return wrong


_right_softmax = attention.masked_softmax


register(
    Exercise(
        id="ex-sdpa",
        chapter=CHAPTER,
        title="scaled dot-product attention",
        signature="scaled_dot_product_attention(q, k, v, mask=None) -> (output, weights)",
        reference=_sdpa_reference,
        cases=[
            Case(
                "q (2, 3, 4), k (2, 5, 4), v (2, 5, 6), no mask",
                _sdpa_case((2, 3, 4), (2, 5, 4), (2, 5, 6), seed=0),
            ),
            Case(
                "q (2, 3, 8), k (2, 4, 8), v (2, 4, 2), mask (2, 3, 4)",
                _sdpa_case((2, 3, 8), (2, 4, 8), (2, 4, 2), (2, 3, 4), seed=1),
            ),
            Case(
                "a query whose keys are all masked",
                _sdpa_case(
                    (1, 3, 4),
                    (1, 5, 4),
                    (1, 5, 3),
                    (1, 3, 5),
                    seed=2,
                    fully_masked_row=True,
                ),
            ),
            Case(
                "4-D inputs (batch, heads, n, d) = (2, 2, 3, 16) with a padding mask (2, 1, 1, 6)",
                _sdpa_case(
                    (2, 2, 3, 16), (2, 2, 6, 16), (2, 2, 6, 5), (2, 1, 1, 6), seed=3
                ),
            ),
        ],
        mistakes=[
            Mistake(
                "the scores are not scaled: divide q·k by √d (d = q.shape[-1]).",
                _attend_with(_right_softmax, scale=lambda d: 1.0),
            ),
            Mistake(
                "the scores are divided by d; the scale is √d.",
                _attend_with(_right_softmax, scale=lambda d: d),
            ),
            Mistake(
                "the scores are multiplied by √d; divide by it.",
                _attend_with(_right_softmax, scale=lambda d: 1 / math.sqrt(d)),
            ),
            Mistake(
                "the softmax runs over the queries (dim=-2); it must run over the keys (dim=-1).",
                _attend_with(_ms_wrong_axis),
            ),
            Mistake(
                "the mask is applied after the softmax: masked keys still took part in the "
                "normalisation. Mask the scores first.",
                _attend_with(_ms_after_softmax),
            ),
            Mistake(
                "a query whose keys are all masked gives NaN (a -inf fill makes its softmax 0/0); "
                "its weights and output must be zeros.",
                _attend_with(_ms_minus_inf),
            ),
            Mistake(
                "a query whose keys are all masked gets uniform weights; they must be zeros.",
                _attend_with(_ms_uniform_rows),
            ),
            Mistake(
                "the mask is inverted: True means 'may attend'.",
                _attend_with(_ms_inverted),
            ),
        ],
        output_names=("output", "weights"),
    )
)
