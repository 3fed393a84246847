"""Chapter 5: patches, the ViT, attention rollout, the CNN baseline, image data."""

import struct

import numpy as np
import pytest
import torch

from course_lib import data, vit
from course_lib.cnn import SmallCNN
from course_lib.vit import (
    PatchEmbedding,
    VisionTransformer,
    ViTConfig,
    attention_rollout,
    patchify,
)


def test_patchify_order_on_a_labelled_image():
    # pixel value = 100 * channel + 10 * row + column: every entry says where it came from
    c, h, w, p = 2, 4, 6, 2
    image = torch.tensor(
        [
            [[100.0 * ch + 10 * r + q for q in range(w)] for r in range(h)]
            for ch in range(c)
        ]
    )
    patches = patchify(image[None], p)[0]  # (6, 8)
    assert patches.shape == (6, p * p * c)
    # patch 1 is the second patch of the first row: rows 0-1, columns 2-3; (P, P, C) order
    expected = [100 * ch + 10 * r + q for r in (0, 1) for q in (2, 3) for ch in (0, 1)]
    assert patches[1].tolist() == expected
    assert patches[3, 0].item() == 10 * 2 + 0  # second row of patches starts at row 2


def test_patch_embedding_equals_patchify_then_linear():
    torch.manual_seed(0)
    embed = PatchEmbedding(patch_size=4, in_channels=3, d_model=16)
    images = torch.randn(2, 3, 16, 12)
    weight, bias = embed.as_linear()
    torch.testing.assert_close(
        embed(images), patchify(images, 4) @ weight.T + bias, atol=1e-5, rtol=1e-5
    )


def test_patchify_rejects_sizes_not_divisible_by_the_patch():
    with pytest.raises(
        ValueError, match="height and width must be divisible by patch_size"
    ):
        patchify(torch.zeros(1, 1, 10, 12), 4)
    with pytest.raises(
        ValueError, match="height and width must be divisible by patch_size"
    ):
        PatchEmbedding(4, 1, 8)(torch.zeros(1, 1, 16, 10))
    with pytest.raises(ValueError, match=r"images must have 4 dimensions"):
        patchify(torch.zeros(16, 16), 4)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_vit_shapes_and_attention_maps(pool):
    model = VisionTransformer(
        ViTConfig(
            image_size=16,
            patch_size=4,
            d_model=32,
            num_heads=4,
            num_layers=3,
            pool=pool,
        )
    )
    logits = model(torch.rand(5, 1, 16, 16), need_weights=True)
    assert logits.shape == (5, 10)
    maps = model.attention_maps()
    assert len(maps) == 3 and all(m.shape == (5, 4, 17, 17) for m in maps)
    assert model.features(torch.rand(2, 1, 16, 16)).shape == (2, 32)


def test_vit_equations_by_hand():
    """Equations (1)-(4) written out independently give the model's features."""
    torch.manual_seed(1)
    model = VisionTransformer(ViTConfig(d_model=32, num_layers=2)).eval()
    images = torch.rand(3, 1, 16, 16)
    weight, bias = model.patch_embedding.as_linear()
    z = torch.cat(
        [model.class_token.expand(3, -1, -1), patchify(images, 4) @ weight.T + bias], 1
    )
    z = z + model.position_embedding  # (1)
    for block in model.blocks:
        z = z + block.self_attention(block.norm1(z))[0]  # (2)
        z = z + block.feed_forward(block.norm2(z))  # (3)
    y = model.norm(z)[:, 0]  # (4)
    with torch.no_grad():
        torch.testing.assert_close(model.features(images), y, atol=1e-5, rtol=1e-5)


def test_vit_rejects_other_image_sizes_and_bad_config():
    model = VisionTransformer(ViTConfig(image_size=16, patch_size=4))
    with pytest.raises(ValueError, match="images must be 16 x 16"):
        model(torch.rand(1, 1, 32, 32))
    with pytest.raises(
        ValueError, match=r"image_size \(18\) must be divisible by patch_size \(4\)"
    ):
        VisionTransformer(ViTConfig(image_size=18))
    with pytest.raises(ValueError, match="pool must be"):
        VisionTransformer(ViTConfig(pool="max"))


def test_attention_rollout_rows_sum_to_one_and_match_the_product():
    g = torch.Generator().manual_seed(2)
    layers = [torch.softmax(torch.randn(2, 3, 5, 5, generator=g), -1) for _ in range(3)]
    rollout = attention_rollout(layers)
    torch.testing.assert_close(rollout.sum(-1), torch.ones(2, 5))
    eye = torch.eye(5)
    a = [0.5 * w.mean(1) + 0.5 * eye for w in layers]
    torch.testing.assert_close(rollout, a[2] @ a[1] @ a[0])
    torch.testing.assert_close(
        attention_rollout(layers, residual=False),
        layers[2].mean(1) @ layers[1].mean(1) @ layers[0].mean(1),
    )
    with pytest.raises(ValueError, match="non-empty list"):
        attention_rollout([])


def test_small_cnn_shapes():
    model = SmallCNN(in_channels=1, num_classes=10, widths=(8, 16, 32))
    x = torch.rand(4, 1, 16, 16)
    assert model.feature_map(x).shape == (4, 32, 4, 4) and model.stride == 4
    assert model(x).shape == (4, 10) and model.features(x).shape == (4, 32)


def test_digits_split_is_stratified_and_offline():
    split = data.load_digits_images(16, seed=0)
    assert split.x_train.shape[1:] == (1, 16, 16)
    assert len(split.y_train) + len(split.y_test) == 1797
    train_counts = torch.bincount(split.y_train, minlength=10).float()
    test_counts = torch.bincount(split.y_test, minlength=10).float()
    assert torch.allclose(
        train_counts / train_counts.sum(), test_counts / test_counts.sum(), atol=0.01
    )
    small = split.subset(0.25, seed=0)
    assert abs(len(small.y_train) - 0.25 * len(split.y_train)) <= 1
    assert len(torch.unique(small.y_train)) == 10


def test_random_affine_identity_and_shape():
    images = torch.rand(3, 1, 16, 16)
    same = data.random_affine(images, rotation=0, translate=0, scale=(1, 1))
    torch.testing.assert_close(same, images, atol=1e-5, rtol=1e-5)
    moved = data.random_affine(images, generator=torch.Generator().manual_seed(0))
    assert moved.shape == images.shape and not torch.allclose(moved, images)


def _write_idx(path, array):
    """Write an array in the IDX format torchvision's MNIST-family datasets read."""
    kind = {np.uint8: 0x08}[array.dtype.type]
    header = struct.pack(">HBB", 0, kind, array.ndim) + struct.pack(
        ">" + "I" * array.ndim, *array.shape
    )
    path.write_bytes(header + array.tobytes())


def test_fashion_mnist_loader_on_a_local_fixture(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        _write_idx(
            raw / f"{prefix}-images-idx3-ubyte",
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        )
        _write_idx(
            raw / f"{prefix}-labels-idx1-ubyte",
            rng.integers(0, 10, (n,), dtype=np.uint8),
        )
    split = data.load_fashion_mnist(str(tmp_path), download=False)
    assert split.x_train.shape == (12, 1, 28, 28) and split.x_test.shape == (
        5,
        1,
        28,
        28,
    )
    assert 0 <= split.x_train.min() and split.x_train.max() <= 1
    assert split.y_train.dtype == torch.long


def test_fashion_mnist_missing_or_offline_says_what_to_do(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    with pytest.raises(FileNotFoundError, match="download=True"):
        data.load_fashion_mnist(str(tmp_path), download=False)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(
        RuntimeError, match="(?s)could not download Fashion-MNIST.*Without internet"
    ):
        data.load_fashion_mnist(str(tmp_path), download=True)


def test_resize_position_embedding_keeps_class_and_matches_interpolate():
    pos = torch.randn(1, 1 + 16, 8)
    out = vit.resize_position_embedding(pos, 6)
    assert out.shape == (1, 37, 8)
    assert torch.equal(out[:, 0], pos[:, 0])
    torch.testing.assert_close(vit.resize_position_embedding(pos, 4), pos)
    # a grid that is constant along the columns stays so after resizing
    rows = torch.arange(4.0)[:, None, None].expand(4, 4, 8).reshape(1, 16, 8)
    resized = vit.resize_position_embedding(torch.cat([pos[:, :1], rows], 1), 7)
    grid = resized[0, 1:].reshape(7, 7, 8)
    torch.testing.assert_close(grid, grid[:, :1].expand(7, 7, 8))
    with pytest.raises(ValueError, match="square"):
        vit.resize_position_embedding(torch.randn(1, 1 + 15, 8), 4)
    with pytest.raises(ValueError, match="new_grid"):
        vit.resize_position_embedding(pos, 0)
