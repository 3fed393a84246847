"""Small convolutional networks: the baseline of chapter 5, the backbone of chapter 6 and
the encoder of chapter 7 (and, for chapter 7's full profile, a CIFAR-sized ResNet-18).

A :class:`SmallCNN` is a stack of 3x3 convolution blocks (conv, normalisation, ReLU),
halving the resolution after every block but the first, then global average pooling
and a linear head. ``feature_map`` returns the last block's output for detection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ._checks import check_tensor

__all__ = ["conv_block", "SmallCNN", "resnet18_cifar"]


def conv_block(
    in_channels: int,
    out_channels: int,
    downsample: bool,
    norm: Callable[[int], nn.Module] = nn.BatchNorm2d,
) -> nn.Sequential:
    """3x3 conv -> norm -> ReLU (-> 2x2 max-pool if ``downsample``)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        norm(out_channels),
        nn.ReLU(inplace=True),
    ]
    if downsample:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """Conv blocks of the given ``widths``, global average pooling, a linear head.

    ``downsample`` says which blocks halve the resolution (default: all but the first);
    the feature map's stride is 2 ** (number of downsampling blocks). ``norm`` builds the
    normalisation layer from a channel count (BatchNorm by default).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: Sequence[int] = (32, 64, 128),
        norm: Callable[[int], nn.Module] = nn.BatchNorm2d,
        downsample: Sequence[bool] | None = None,
    ):
        super().__init__()
        if not widths:
            raise ValueError("widths must list at least one channel count")
        downsample = (
            [i > 0 for i in range(len(widths))]
            if downsample is None
            else list(downsample)
        )
        if len(downsample) != len(widths):
            raise ValueError(
                f"downsample needs one flag per block ({len(widths)}); got {len(downsample)}"
            )
        blocks, channels = [], in_channels
        for width, halve in zip(widths, downsample):
            blocks.append(conv_block(channels, width, downsample=halve, norm=norm))
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.out_channels = channels
        self.stride = 2 ** sum(downsample)
        self.head = nn.Linear(channels, num_classes) if num_classes else nn.Identity()

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, widths[-1], H / stride, W / stride)."""
        check_tensor(
            "images", images, ndim=4, expected="(batch, channels, height, width)"
        )
        return self.blocks(images)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, widths[-1]): the globally average-pooled feature map."""
        return self.feature_map(images).mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def resnet18_cifar(
    in_channels: int = 3,
    num_classes: int = 0,
    norm: Callable[[int], nn.Module] = nn.BatchNorm2d,
) -> nn.Module:
    """torchvision's ResNet-18 as the MoCo CIFAR-10 demo uses it: a 3x3 stride-1 first
    convolution and no max-pool (a 32 x 32 image keeps a 4 x 4 map at the end), ``norm``
    for every BatchNorm (e.g. split BatchNorm). ``num_classes=0``: no classifier, the
    model returns the (B, 512) pooled features."""
    from torchvision.models import resnet18

    model = resnet18(num_classes=max(num_classes, 1), norm_layer=norm)
    model.conv1 = nn.Conv2d(
        in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False
    )
    model.maxpool = nn.Identity()
    if not num_classes:
        model.fc = nn.Identity()
    return model
