"""Exercises of chapter 3: splitting heads and the sinusoidal positional encoding."""

from __future__ import annotations

import torch

from .. import attention
from ._core import Case, Exercise, Mistake, register

CHAPTER = "03_multihead_attention"


def _split_case(batch, tokens, d_model, heads, seed):
    def make():
        g = torch.Generator().manual_seed(seed)
        return torch.randn(batch, tokens, d_model, generator=g), heads

    return make


def _plain_reshape(x, num_heads):
    b, t, d = x.shape
    return x.reshape(b, num_heads, t, d // num_heads)


def _interleaved(x, num_heads):
    b, t, d = x.shape
    return x.reshape(b, t, d // num_heads, num_heads).permute(0, 3, 1, 2)


def _tokens_and_heads_swapped(x, num_heads):
    b, t, d = x.shape
    return x.reshape(b, t, num_heads, d // num_heads)


register(
    Exercise(
        id="ex-split-heads",
        chapter=CHAPTER,
        title="split the features into heads",
        signature="split_heads(x, num_heads): (B, T, D) -> (B, H, T, D/H)",
        reference=attention.split_heads,
        cases=[
            Case("x (2, 5, 12), 3 heads", _split_case(2, 5, 12, 3, seed=0)),
            Case("x (3, 4, 16), 4 heads", _split_case(3, 4, 16, 4, seed=1)),
            Case("x (1, 6, 8), 1 head", _split_case(1, 6, 8, 1, seed=2)),
        ],
        mistakes=[
            Mistake(
                "a plain reshape to (B, H, T, D/H) mixes tokens and heads: view as "
                "(B, T, H, D/H) first, then transpose dimensions 1 and 2.",
                _plain_reshape,
            ),
            Mistake(
                "the heads are interleaved (head h gets features h, h+H, h+2H, ...); each head must "
                "get a contiguous block of D/H features: view as (B, T, H, D/H).",
                _interleaved,
            ),
            Mistake(
                "the result is (B, T, H, D/H): transpose the token and head dimensions.",
                _tokens_and_heads_swapped,
            ),
        ],
    )
)


def _pe_case(positions, d_model):
    return lambda: (positions, d_model)


def _pe_with(exponent, first=torch.sin, second=torch.cos):
    def wrong(num_positions, d_model):
        p = torch.arange(num_positions, dtype=torch.float32)[:, None]
        angle = p / 10000.0 ** exponent(d_model)
        pe = torch.zeros(num_positions, d_model)
        pe[:, 0::2], pe[:, 1::2] = first(angle), second(angle)
        return pe

    return wrong


_right_exponent = lambda d: torch.arange(0, d, 2, dtype=torch.float32) / d  # noqa: E731

register(
    Exercise(
        id="ex-positional-encoding",
        chapter=CHAPTER,
        title="the sinusoidal positional encoding",
        signature="sinusoidal_positional_encoding(num_positions, d_model) -> (num_positions, d_model)",
        reference=attention.sinusoidal_positional_encoding,
        cases=[
            Case("6 positions, d_model = 8", _pe_case(6, 8)),
            Case("50 positions, d_model = 32", _pe_case(50, 32)),
            Case("3 positions, d_model = 2", _pe_case(3, 2)),
        ],
        mistakes=[
            Mistake(
                "sin and cos are swapped: even columns (2i) take the sine, odd columns (2i+1) the cosine.",
                _pe_with(_right_exponent, torch.cos, torch.sin),
            ),
            Mistake(
                "the exponent is off by a factor of 2: it is 2i/d where 2i is the even column index "
                "(0, 2, 4, ...), i.e. torch.arange(0, d, 2) / d.",
                _pe_with(lambda d: torch.arange(0, d // 2, dtype=torch.float32) / d),
            ),
            Mistake(
                "the exponent is off by a factor of 2: it is 2i/d where 2i is the even column index "
                "(0, 2, 4, ...), i.e. torch.arange(0, d, 2) / d.",
                _pe_with(lambda d: torch.arange(0, d, 2, dtype=torch.float32) * 2 / d),
            ),
            Mistake(
                "the position is multiplied by 10000^(2i/d); it must be divided by it.",
                _pe_with(lambda d: -_right_exponent(d)),
            ),
        ],
    )
)
