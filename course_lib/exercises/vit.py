"""Exercises of chapter 5: cutting images into patches."""

from __future__ import annotations

import torch

from .. import vit
from ._core import Case, Exercise, Mistake, register

CHAPTER = "05_vision_transformer"


def _images(b, c, h, w, p, seed):
    def make():
        g = torch.Generator().manual_seed(seed)
        return torch.randn(b, c, h, w, generator=g), p

    return make


def _column_major(images, p):
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // p, p, w // p, p).permute(
        0, 4, 2, 3, 5, 1
    )  # cols before rows
    return x.reshape(b, -1, p * p * c)


def _channels_first(images, p):
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // p, p, w // p, p).permute(
        0, 2, 4, 1, 3, 5
    )  # (C, P, P) per patch
    return x.reshape(b, -1, p * p * c)


def _plain_reshape(images, p):
    b, c, h, w = images.shape
    return images.reshape(b, -1, p * p * c)


def _cropped(images, p):
    h, w = images.shape[-2:]
    return vit.patchify(images[..., : h - h % p, : w - w % p], p)


register(
    Exercise(
        id="ex-patchify",
        chapter=CHAPTER,
        title="cut images into patches",
        signature="patchify(images, patch_size): (B, C, H, W) -> (B, N, P*P*C)",
        reference=vit.patchify,
        cases=[
            Case("2 grey 4 x 6 images, P = 2", _images(2, 1, 4, 6, 2, seed=0)),
            Case("1 colour 6 x 4 image, P = 2", _images(1, 3, 6, 4, 2, seed=1)),
            Case("2 colour 8 x 8 images, P = 4", _images(2, 3, 8, 8, 4, seed=2)),
            Case(
                "a 5 x 6 image with P = 2 (5 is not divisible by 2)",
                _images(1, 1, 5, 6, 2, seed=3),
                raises=ValueError,
            ),
        ],
        mistakes=[
            Mistake(
                "the patches are in column-major order (top to bottom first); go left to right "
                "along each row of patches, then to the next row.",
                _column_major,
            ),
            Mistake(
                "the channels are flattened in the wrong place: flatten each patch as (P, P, C), "
                "with the channels innermost, not (C, P, P).",
                _channels_first,
            ),
            Mistake(
                "a plain reshape does not cut patches: it takes consecutive pixels of a row. "
                "Reshape to (B, C, H/P, P, W/P, P) and permute.",
                _plain_reshape,
            ),
            Mistake(
                "the image is silently cropped to a multiple of P; raise a ValueError instead, "
                "so that nobody loses pixels without noticing.",
                _cropped,
            ),
        ],
    )
)
