"""Offline data for every chapter: generated, or shipped inside a dependency.

Nothing here touches the network in the quick profile. Every generator takes a
``seed`` and is deterministic given it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Regression1D", "true_regression_function", "make_regression_1d", "make_face_scene"]

# ---------------------------------------------------------------------------
# Chapter 1: a 1-D regression problem for Nadaraya--Watson pooling
# ---------------------------------------------------------------------------


def true_regression_function(x: torch.Tensor) -> torch.Tensor:
    """f(x) = 2 sin(x) + x^0.8, the curve chapter 1's estimators try to recover."""
    return 2 * torch.sin(x) + x.clamp(min=0) ** 0.8


@dataclass
class Regression1D:
    """Training pairs (keys, values) and held-out test pairs, all shape (n,)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    noise_std: float

    def __repr__(self) -> str:
        return (f"Regression1D({len(self.x_train)} training points, {len(self.x_test)} held-out "
                f"points, noise std {self.noise_std})")


def make_regression_1d(n_train: int = 50, n_test: int = 500, noise_std: float = 0.5,
                       x_max: float = 5.0, seed: int = 0) -> Regression1D:
    """y = 2 sin(x) + x^0.8 + eps, eps ~ N(0, noise_std^2), x ~ U(0, x_max).

    Training and test points are drawn independently (held-out, never the training
    x's); both are sorted by x for plotting.
    """
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"{name} must be a positive integer; got {n!r}")
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0; got {noise_std!r}")
    generator = torch.Generator().manual_seed(seed)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, _ = torch.sort(torch.rand(n, generator=generator) * x_max)
        y = true_regression_function(x) + noise_std * torch.randn(n, generator=generator)
        return x, y

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return Regression1D(x_train, y_train, x_test, y_test, noise_std)


def make_face_scene(size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A grey "photo": a line-drawn face on a textured, lighter background.

    Returns ``image`` (size, size) in [0, 1] and ``face`` (size, size), a bool mask of
    the disc that holds the face. Used in chapter 1 to show attention picking out what
    matters and suppressing the rest.
    """
    if not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an integer >= 16; got {size!r}")
    generator = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size) / size, torch.arange(size) / size, indexing="ij")
    image = 0.85 - 0.1 * yy + 0.03 * torch.randn(size, size, generator=generator)
    cy, cx, r = 0.38, 0.62, 0.2
    ink = 0.1
    distance = torch.hypot(yy - cy, xx - cx)
    image[(distance - r).abs() < 0.035] = ink                      # outline of the head
    for eye_x in (cx - 0.07, cx + 0.07):                           # two eyes
        image[torch.hypot(yy - (cy - 0.05), xx - eye_x) < 0.03] = ink
    image[((distance - 0.11).abs() < 0.025) & (yy > cy + 0.04)] = ink   # a smile
    return image.clamp(0, 1), distance < r + 0.05
