"""Exercises of chapter 4: the causal mask and the padding mask."""

from __future__ import annotations

import torch

from .. import transformer
from ._core import Case, Exercise, Mistake, register

CHAPTER = "04_transformer"

register(
    Exercise(
        id="ex-causal-mask",
        chapter=CHAPTER,
        title="the causal (subsequent) mask",
        signature="causal_mask(size) -> bool (size, size), True where j <= i",
        reference=transformer.causal_mask,
        cases=[
            Case("size 4", lambda: (4,)),
            Case("size 7", lambda: (7,)),
            Case("size 1", lambda: (1,)),
        ],
        mistakes=[
            Mistake(
                "the mask is transposed: row i is the query at position i and may see the keys "
                "j <= i (lower triangle, torch.tril), not j >= i.",
                lambda size: torch.ones(size, size, dtype=torch.bool).triu(),
            ),
            Mistake(
                "the diagonal is excluded: a position must be allowed to attend to itself (j = i).",
                lambda size: torch.ones(size, size, dtype=torch.bool).tril(-1),
            ),
            Mistake(
                "the mask is inverted: True must mean 'may attend' (PyTorch's "
                "nn.Transformer.generate_square_subsequent_mask uses the opposite convention).",
                lambda size: torch.ones(size, size, dtype=torch.bool).triu(1),
            ),
        ],
    )
)


def _lengths_case(lengths, max_len):
    return lambda: (torch.tensor(lengths), max_len)


register(
    Exercise(
        id="ex-padding-mask",
        chapter=CHAPTER,
        title="the padding mask",
        signature="padding_mask(lengths, max_len) -> bool (batch, max_len), True at real tokens",
        reference=transformer.padding_mask,
        cases=[
            Case("lengths [2, 5, 3], max_len 5", _lengths_case([2, 5, 3], 5)),
            Case("lengths [1, 4], max_len 6", _lengths_case([1, 4], 6)),
            Case(
                "lengths [0, 3], max_len 3 (an empty sequence)",
                _lengths_case([0, 3], 3),
            ),
        ],
        mistakes=[
            Mistake(
                "off by one: a sequence of length L has real tokens at positions 0 ... L-1 "
                "(use position < length, not <=).",
                lambda lengths, max_len: (
                    torch.arange(max_len)[None, :] <= lengths[:, None]
                ),
            ),
            Mistake(
                "off by one: a sequence of length L has real tokens at positions 0 ... L-1, "
                "so position L-1 is real too.",
                lambda lengths, max_len: (
                    torch.arange(max_len)[None, :] < lengths[:, None] - 1
                ),
            ),
            Mistake(
                "the mask is inverted: True must mark the real tokens (may be attended), "
                "False the padding.",
                lambda lengths, max_len: (
                    torch.arange(max_len)[None, :] >= lengths[:, None]
                ),
            ),
            Mistake(
                "the result is transposed: it must be (batch, max_len).",
                lambda lengths, max_len: (
                    torch.arange(max_len)[:, None] < lengths[None, :]
                ),
            ),
        ],
    )
)
