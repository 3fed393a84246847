"""The Vision Transformer (Dosovitskiy et al., 2021): an image as a sequence of patches.

Read top to bottom:

1. :func:`patchify` -- cut images into P x P patches and flatten each (from scratch);
2. :class:`PatchEmbedding` -- the same cut + linear projection E, as a strided convolution;
3. :class:`VisionTransformer` -- [class] token, learned position embeddings E_pos,
   pre-LN encoder blocks (chapter 4's :class:`~course_lib.transformer.EncoderBlock`),
   a final LayerNorm and a linear head, following the paper's equations (1)-(4);
4. :func:`resize_position_embedding` -- the learned position grid interpolated to a
   new image size, as the paper does to fine-tune at a higher resolution;
5. :func:`attention_rollout` (Abnar & Zuidema, 2020) -- how much each input patch
   contributes to each token after all layers.

Shapes: B images, C channels, H x W pixels, P patch size, N = HW / P^2 patches, D width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_floating, check_size, check_tensor, shape_str
from .transformer import EncoderBlock

__all__ = [
    "patchify",
    "PatchEmbedding",
    "ViTConfig",
    "VisionTransformer",
    "resize_position_embedding",
    "attention_rollout",
]


def _check_images(images, patch_size: int) -> None:
    check_tensor("images", images, ndim=4, expected="(batch, channels, height, width)")
    check_floating("images", images)
    if not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"patch_size must be a positive integer; got {patch_size!r}")
    height, width = images.shape[-2:]
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"images of {height} x {width} pixels cannot be cut into {patch_size} x {patch_size} "
            f"patches: height and width must be divisible by patch_size (pad or resize first)"
        )


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, P*P*C), N = (H/P)(W/P).

    Patches come in row-major order (left to right, then top to bottom); each patch is
    flattened as (P, P, C): row by row, pixel by pixel, channels innermost.
    """
    _check_images(images, patch_size)
    b, c, h, w = images.shape
    p = patch_size
    x = images.reshape(b, c, h // p, p, w // p, p)  # (B, C, rows, P, cols, P)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (B, rows, cols, P, P, C)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


class PatchEmbedding(nn.Module):
    """Patches -> D-dimensional tokens, as one Conv2d with kernel = stride = P.

    A convolution whose kernel covers exactly one patch and that jumps a whole patch at
    a time applies the same linear map E to every flattened patch: ``patchify`` followed
    by a linear layer, in one fused op.
    """

    def __init__(self, patch_size: int, in_channels: int, d_model: int):
        super().__init__()
        self.patch_size = patch_size
        self.projection = nn.Conv2d(
            in_channels, d_model, kernel_size=patch_size, stride=patch_size
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, D)."""
        _check_images(images, self.patch_size)
        if images.shape[1] != self.projection.in_channels:
            raise ValueError(
                f"images must have {self.projection.in_channels} channels; got {shape_str(images)}"
            )
        # (B, D, rows, cols) -> (B, N, D)
        return self.projection(images).flatten(2).transpose(1, 2)

    def as_linear(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(E, b): the equivalent weight (D, P*P*C) and bias (D,) for ``patchify`` order."""
        weight = self.projection.weight  # (D, C, P, P)
        return weight.permute(0, 2, 3, 1).reshape(
            weight.shape[0], -1
        ), self.projection.bias


@dataclass
class ViTConfig:
    """Sizes of a :class:`VisionTransformer`; the defaults suit 16 x 16 digits on a CPU."""

    image_size: int = 16
    patch_size: int = 4
    in_channels: int = 1
    num_classes: int = 10
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 4
    mlp_ratio: int = 2
    dropout: float = 0.0
    pool: str = "cls"  # "cls": read z_L^0; "mean": average the patch tokens


class VisionTransformer(nn.Module):
    """ViT. The paper's equations, and the line that computes each:

    (1) z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos      -> ``embed``
    (2) z'_l = MSA(LN(z_{l-1})) + z_{l-1}                     -> EncoderBlock, pre-LN
    (3) z_l = MLP(LN(z'_l)) + z'_l                            -> EncoderBlock, pre-LN
    (4) y = LN(z_L^0)                                         -> ``self.norm(z)[:, 0]``
    followed by a linear head on y.
    """

    def __init__(self, config: ViTConfig):
        super().__init__()
        c = self.config = config
        if c.image_size % c.patch_size:
            raise ValueError(
                f"image_size ({c.image_size}) must be divisible by patch_size ({c.patch_size})"
            )
        if c.pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean'; got {c.pool!r}")
        self.num_patches = (c.image_size // c.patch_size) ** 2
        self.patch_embedding = PatchEmbedding(c.patch_size, c.in_channels, c.d_model)
        self.class_token = nn.Parameter(torch.zeros(1, 1, c.d_model))
        self.position_embedding = nn.Parameter(
            torch.randn(1, self.num_patches + 1, c.d_model) * 0.02
        )
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(
                c.d_model,
                c.num_heads,
                c.mlp_ratio * c.d_model,
                c.dropout,
                norm_first=True,
                activation="gelu",
            )
            for _ in range(c.num_layers)
        )
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.num_classes)
        nn.init.trunc_normal_(self.class_token, std=0.02)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Equation (1): (B, C, H, W) -> z_0 (B, 1 + N, D)."""
        if tuple(images.shape[-2:]) != (self.config.image_size,) * 2:
            raise ValueError(
                f"images must be {self.config.image_size} x {self.config.image_size} "
                f"(the position embeddings are learned for that size); got {shape_str(images)}"
            )
        patches = self.patch_embedding(images)  # (B, N, D)
        cls = self.class_token.expand(images.shape[0], -1, -1)  # (B, 1, D)
        return self.dropout(torch.cat([cls, patches], dim=1) + self.position_embedding)

    def features(
        self, images: torch.Tensor, need_weights: bool = False
    ) -> torch.Tensor:
        """Equations (1)-(4): the image representation y (B, D), before the head."""
        z = self.embed(images)
        for block in self.blocks:  # equations (2), (3)
            z = block(z, need_weights=need_weights)
        z = self.norm(z)
        # equation (4)
        return z[:, 0] if self.config.pool == "cls" else z[:, 1:].mean(dim=1)

    def forward(self, images: torch.Tensor, need_weights: bool = False) -> torch.Tensor:
        """(B, C, H, W) -> class logits (B, num_classes)."""
        return self.head(self.features(images, need_weights))

    def attention_maps(self) -> list[torch.Tensor]:
        """Per-layer attention weights (B, H, 1 + N, 1 + N) of the last call with
        ``need_weights=True``."""
        return [block.attention_weights for block in self.blocks]


def resize_position_embedding(pos_embed: torch.Tensor, new_grid: int) -> torch.Tensor:
    """(1, 1 + g*g, D) -> (1, 1 + G*G, D) with G = ``new_grid``: the [class] position
    unchanged, the g x g grid (row-major) resized bilinearly. This is how a ViT trained
    at one resolution is fine-tuned at another (the paper's section 3.2). Bilinear with
    ``align_corners=False``, as timm: it samples the cells' centres, where the authors'
    ``scipy.ndimage.zoom(..., order=1)`` keeps the grid's corners in place."""
    check_tensor("pos_embed", pos_embed, ndim=3, expected="(1, 1 + g*g, D)")
    new_grid = check_size("new_grid", new_grid)
    grid = round((pos_embed.shape[1] - 1) ** 0.5)
    if pos_embed.shape[0] != 1 or grid * grid != pos_embed.shape[1] - 1:
        raise ValueError(
            "pos_embed must be (1, 1 + g*g, D): the [class] position, then a square "
            f"grid; got {shape_str(pos_embed)}"
        )
    cls, patches = pos_embed[:, :1], pos_embed[:, 1:]
    d = pos_embed.shape[-1]
    patches = patches.reshape(1, grid, grid, d).permute(0, 3, 1, 2)  # (1, D, g, g)
    patches = F.interpolate(
        patches, size=(new_grid, new_grid), mode="bilinear", align_corners=False
    )
    patches = patches.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, d)
    return torch.cat([cls, patches], dim=1)


def attention_rollout(
    attentions: list[torch.Tensor], residual: bool = True
) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): how much each input token flows into each
    output token through all layers.

    Each layer's weights (B, H, T, T) are averaged over heads; with ``residual``, the
    identity is mixed in, A = (W + I) / 2, to account for the residual connection; the
    layers are multiplied, A_L ... A_1. Returns (B, T, T), each row summing to 1; row 0
    says where the [class] token's information comes from.
    """
    if not attentions:
        raise ValueError(
            "attentions must be a non-empty list of (batch, heads, tokens, tokens) tensors"
        )
    rollout = None
    if any(weights is None for weights in attentions):
        raise ValueError(
            "attentions holds None: the maps were taken from a forward pass without "
            "weights; run the model with need_weights=True first"
        )
    for layer, weights in enumerate(attentions):
        check_tensor(
            f"attentions[{layer}]",
            weights,
            ndim=4,
            expected="(batch, heads, tokens, tokens)",
        )
        a = weights.mean(dim=1)  # (B, T, T)
        if residual:
            a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout
    return rollout
