"""Exercises of chapter 5: position embeddings for a new image size."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import vit
from ._core import Case, Exercise, Mistake, register
from ._predictions import Prediction, predict

CHAPTER = "05_vision_transformer"


def _resize(pos_embed, new_grid, *, mode="bilinear", align_corners=False):
    grid = round((pos_embed.shape[1] - 1) ** 0.5)
    d = pos_embed.shape[-1]
    patches = pos_embed[:, 1:].reshape(1, grid, grid, d).permute(0, 3, 1, 2)
    patches = F.interpolate(
        patches, size=(new_grid, new_grid), mode=mode, align_corners=align_corners
    )
    patches = patches.permute(0, 2, 3, 1).reshape(1, -1, d)
    return torch.cat([pos_embed[:, :1], patches], dim=1)


def _class_position_resized_too(pos_embed, new_grid):
    everything = pos_embed.transpose(1, 2)  # (1, D, 1 + g*g), one long row
    return F.interpolate(
        everything, size=1 + new_grid * new_grid, mode="linear", align_corners=False
    ).transpose(1, 2)


def _grid_scrambled(pos_embed, new_grid):
    grid = round((pos_embed.shape[1] - 1) ** 0.5)
    d = pos_embed.shape[-1]
    patches = pos_embed[:, 1:].reshape(1, d, grid, grid)  # no permute: scrambled
    patches = F.interpolate(patches, size=(new_grid, new_grid), mode="bilinear")
    return torch.cat([pos_embed[:, :1], patches.reshape(1, -1, d)], dim=1)


def _position_case(grid, new_grid, d, seed):
    def make():
        g = torch.Generator().manual_seed(seed)
        return torch.randn(1, 1 + grid * grid, d, generator=g), new_grid

    return make


register(
    Exercise(
        id="ex-resize-pos-embed",
        chapter=CHAPTER,
        title="resize the position embeddings for a new image size",
        signature=(
            "resize_position_embedding(pos_embed, new_grid): (1, 1 + g*g, D), int -> "
            "(1, 1 + G*G, D)"
        ),
        reference=vit.resize_position_embedding,
        stands_for=("course_lib.vit.resize_position_embedding",),
        cases=[
            Case("a 4 x 4 grid to 6 x 6, D = 8", _position_case(4, 6, 8, seed=0)),
            Case("a 3 x 3 grid to 7 x 7, D = 5", _position_case(3, 7, 5, seed=1)),
            Case("a 6 x 6 grid down to 4 x 4, D = 4", _position_case(6, 4, 4, seed=2)),
            Case("the same size: 4 x 4 to 4 x 4", _position_case(4, 4, 3, seed=3)),
        ],
        mistakes=[
            Mistake(
                "the [class] position was interpolated with the grid; it belongs to no "
                "patch: keep pos_embed[:, :1] as it is and resize only pos_embed[:, 1:].",
                _class_position_resized_too,
            ),
            Mistake(
                "the grid is scrambled: reshape the (1, g*g, D) patch positions to "
                "(1, g, g, D) (row-major), then permute to (1, D, g, g) for "
                "F.interpolate; a reshape straight to (1, D, g, g) mixes features and "
                "positions.",
                _grid_scrambled,
            ),
            Mistake(
                "align_corners=True: the reference code (and F.interpolate's default) "
                "uses align_corners=False, which treats each position as the centre of "
                "its patch.",
                lambda p, g: _resize(p, g, align_corners=True),
            ),
            Mistake(
                "that is bicubic interpolation; the reference implementation resizes "
                "bilinearly (mode='bilinear').",
                lambda p, g: _resize(p, g, mode="bicubic"),
            ),
            Mistake(
                "that is nearest-neighbour resizing (mode='nearest'); use "
                "mode='bilinear', align_corners=False.",
                lambda p, g: _resize(p, g, mode="nearest", align_corners=None),
            ),
        ],
    )
)


predict(
    Prediction(
        id="pred-small-data",
        chapter=CHAPTER,
        question=(
            "Trained on 10% of the training set, same recipe and steps: which is ahead "
            "on the test set?"
        ),
        choices={"a": "the ViT", "b": "the CNN", "c": "neither: a tie"},
        answer="b",
        why=(
            "a CNN is built with locality and translation equivariance: every filter "
            "sees a small neighbourhood, the same filter everywhere. A ViT must learn "
            "both from data (only the patching is local). With a few hundred images "
            "those built-in assumptions are worth more than the ViT's flexibility."
        ),
    )
)
