"""MoCo (He et al., 2020): contrastive learning with a momentum encoder and a queue.

Read top to bottom:

1. :func:`augment` -- two random "views" of each image define what counts as "the same";
2. :func:`info_nce_logits` -- the positive (query . its key) and the negatives (query .
   the queue), over a temperature: InfoNCE is cross-entropy with the label 0;
3. :func:`momentum_update` -- the key encoder follows the query encoder slowly;
4. :class:`SplitBatchNorm`, :func:`batch_shuffle` / :func:`batch_unshuffle` -- keep
   BatchNorm from leaking information between a query and its key on one device;
5. :class:`MoCo` -- the whole method: two encoders, a queue of keys, the loss;
6. :func:`knn_predict` and :func:`linear_probe` -- judging features without training
   the encoder on labels.

Shapes: B images per batch, D feature size, K queue length.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_tensor, shape_str
from .data import random_affine

__all__ = [
    "augment",
    "augment_colour",
    "info_nce_logits",
    "momentum_update",
    "SplitBatchNorm",
    "batch_shuffle",
    "batch_unshuffle",
    "EncoderWithHead",
    "MoCo",
    "knn_predict",
    "extract_features",
    "linear_probe",
]

# ---------------------------------------------------------------------------
# 1. Views
# ---------------------------------------------------------------------------


def _check_images(images, expected: str) -> None:
    check_tensor("images", images, ndim=4, expected=expected)
    if not images.is_floating_point():
        raise TypeError(
            f"images must be floats in [0, 1]; got dtype {images.dtype}: "
            "convert 0-255 images with images.float() / 255"
        )
    # reading values is free on the CPU; on a GPU it would wait for it at every step
    if images.device.type == "cpu" and images.numel() and images.max() > 1:
        raise ValueError(
            f"images must be in [0, 1]; got values up to {images.max().item():.4g}: "
            "divide 0-255 images by 255"
        )


def augment(
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    scale: tuple[float, float] = (0.6, 1.0),
    rotation: float = 15.0,
    translate: float = 0.15,
    contrast: float = 0.4,
    noise: float = 0.1,
    erase: float = 0.25,
) -> torch.Tensor:
    """A random view of every image in a (B, C, H, W) batch in [0, 1]: random resized crop
    (zoom into a random region; area fraction in ``scale``), rotation, shift, contrast and
    brightness jitter, Gaussian noise and, with probability ``erase``, a random erased
    rectangle. No flips: a mirrored 2 is not a 2."""
    _check_images(images, "(batch, channels, height, width)")
    b, _, h, w = images.shape
    device = images.device

    def uniform(low, high):  # one number per image
        return (low + (high - low) * torch.rand(b, generator=generator)).to(device)

    # crop + rotation + shift as one affine warp: a crop of area fraction a is the image
    # magnified by 1 / sqrt(a)
    magnification = (1 / math.sqrt(scale[1]), 1 / math.sqrt(scale[0]))
    views = random_affine(images, rotation, translate, magnification, generator)
    # contrast and brightness
    factor = uniform(1 - contrast, 1 + contrast).view(b, 1, 1, 1)
    offset = uniform(-contrast / 4, contrast / 4).view(b, 1, 1, 1)
    views = views * factor + offset
    # noise
    views = views + noise * torch.randn(views.shape, generator=generator).to(device)
    # random erasing: a rectangle of 10-30 % of the side in each direction
    if erase > 0:
        chosen = uniform(0, 1) < erase
        eh = (uniform(0.1, 0.3) * h).long().clamp(min=1)
        ew = (uniform(0.1, 0.3) * w).long().clamp(min=1)
        top = (uniform(0, 1) * (h - eh)).long()
        left = (uniform(0, 1) * (w - ew)).long()
        rows = torch.arange(h, device=device)[None, :, None]
        cols = torch.arange(w, device=device)[None, None, :]
        box = (
            (rows >= top[:, None, None])
            & (rows < (top + eh)[:, None, None])
            & (cols >= left[:, None, None])
            & (cols < (left + ew)[:, None, None])
        )
        views = views.masked_fill((box & chosen[:, None, None])[:, None], 0.0)
    return views.clamp(0, 1)


_LUMA = torch.tensor([0.299, 0.587, 0.114])  # ITU-R 601, as torchvision


def _grey(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) luma."""
    return torch.einsum("bchw,c->bhw", images, _LUMA.to(images))[:, None]


def _shift_hue(images: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Shift the HSV hue of each image of (B, 3, H, W) by ``turns`` (B,) of the colour
    circle: torchvision's ``adjust_hue``, with a factor per image."""
    r, g, b = images.unbind(1)
    value = images.amax(1)
    chroma = value - images.amin(1)
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    hue = torch.where(
        value == r,
        (g - b) / safe,
        torch.where(value == g, 2 + (b - r) / safe, 4 + (r - g) / safe),
    )
    hue = (hue / 6 + turns.view(-1, 1, 1)) % 1  # in turns, in [0, 1)

    def channel(n: int) -> torch.Tensor:  # HSV -> RGB, per channel
        k = (n + 6 * hue) % 6
        return value - chroma * torch.minimum(k, 4 - k).clamp(0, 1)

    return torch.stack([channel(5), channel(3), channel(1)], dim=1)


def augment_colour(
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: float = 0.5,
    jitter: float = 0.8,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    grayscale: float = 0.2,
) -> torch.Tensor:
    """MoCo v2's CIFAR-10 views of a (B, 3, H, W) batch in [0, 1], each image drawn on its own:
    random resized crop (area fraction in ``scale``, aspect ratio in ``ratio``), horizontal
    flip (probability ``flip``), colour jitter (probability ``jitter``: brightness, contrast,
    saturation, hue, in torchvision's order and strengths) and grayscale (probability
    ``grayscale``).

    Only a few random numbers per image are drawn (with ``generator``, on the CPU); the
    pixels stay on the images' device and no Python loop runs over the images.
    """
    _check_images(images, "(batch, 3, height, width), RGB in [0, 1]")
    if images.shape[1] != 3:
        raise ValueError(
            f"augment_colour needs RGB images (batch, 3, height, width); got "
            f"{shape_str(images)}; use augment for grey images"
        )
    b, device, dtype = images.shape[0], images.device, images.dtype

    def uniform(low, high):
        return (low + (high - low) * torch.rand(b, generator=generator)).to(
            device, dtype
        )

    def chosen(p):  # (B, 1, 1, 1) bool
        return (torch.rand(b, generator=generator) < p).to(device).view(b, 1, 1, 1)

    def per_image(values):
        return values.view(b, 1, 1, 1)

    # random resized crop and flip, as one affine warp of the sampling grid
    area = uniform(*scale)
    aspect = torch.exp(uniform(math.log(ratio[0]), math.log(ratio[1])))
    width, height = (
        (area * aspect).sqrt().clamp(max=1),
        (area / aspect).sqrt().clamp(max=1),
    )
    centre_x, centre_y = (
        (2 * uniform(0, 1) - 1) * (1 - width),
        (2 * uniform(0, 1) - 1) * (1 - height),
    )
    mirror = 1 - 2 * chosen(flip).view(b).to(dtype)  # -1 flips x
    zero = torch.zeros_like(width)
    # (B, 2, 3)
    theta = torch.stack(
        [
            torch.stack([width * mirror, zero, centre_x], -1),
            torch.stack([zero, height, centre_y], -1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    views = F.grid_sample(images, grid, padding_mode="reflection", align_corners=False)

    # colour jitter: brightness, contrast, saturation, hue (each blended as torchvision does)
    out = (views * per_image(uniform(1 - brightness, 1 + brightness))).clamp(0, 1)
    factor = per_image(uniform(1 - contrast, 1 + contrast))
    out = (factor * out + (1 - factor) * _grey(out).mean((2, 3), keepdim=True)).clamp(
        0, 1
    )
    factor = per_image(uniform(1 - saturation, 1 + saturation))
    out = (factor * out + (1 - factor) * _grey(out)).clamp(0, 1)
    out = _shift_hue(out, uniform(-hue, hue)).clamp(0, 1)
    views = torch.where(chosen(jitter), out, views)
    return torch.where(chosen(grayscale), _grey(views).expand_as(views), views)


# ---------------------------------------------------------------------------
# 2. The loss and 3. the momentum update
# ---------------------------------------------------------------------------


def info_nce_logits(
    q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Logits of InfoNCE: (B, 1 + K). Column 0 is the positive q . k, columns 1.. are the
    negatives q . queue_j, all divided by the temperature.

    q, k: (B, D) raw features (L2-normalised here); queue: (K, D), already normalised keys.
    The loss is ``F.cross_entropy(logits, zeros)``: pick the positive among 1 + K.
    """
    check_tensor("q", q, ndim=2, expected="(batch, dim)")
    check_tensor("k", k, ndim=2, expected="(batch, dim)")
    check_tensor("queue", queue, ndim=2, expected="(queue_size, dim)")
    if q.shape != k.shape:
        raise ValueError(
            f"q and k must have the same shape (batch, dim); got {shape_str(q)} and {shape_str(k)}"
        )
    if queue.shape[1] != q.shape[1]:
        raise ValueError(
            f"the queue's feature dimension must equal the features': queue {shape_str(queue)}, "
            f"q {shape_str(q)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be positive; got {temperature}")
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    positive = (q * k).sum(dim=1, keepdim=True)  # (B, 1)
    negatives = q @ queue.T  # (B, K)
    return torch.cat([positive, negatives], dim=1) / temperature


@torch.no_grad()
def momentum_update(encoder_q: nn.Module, encoder_k: nn.Module, m: float) -> None:
    """theta_k <- m * theta_k + (1 - m) * theta_q, parameter by parameter, in place."""
    if not 0 <= m <= 1:
        raise ValueError(f"m must be in [0, 1]; got {m}")
    params_q, params_k = list(encoder_q.parameters()), list(encoder_k.parameters())
    if len(params_q) != len(params_k) or any(
        a.shape != b.shape for a, b in zip(params_q, params_k)
    ):
        raise ValueError("encoder_q and encoder_k must have the same architecture")
    for theta_q, theta_k in zip(params_q, params_k):
        theta_k.mul_(m).add_(theta_q.detach(), alpha=1 - m)


# ---------------------------------------------------------------------------
# 4. BatchNorm on one device
# ---------------------------------------------------------------------------


class SplitBatchNorm(nn.BatchNorm2d):
    """BatchNorm over ``num_splits`` separate sub-batches, as if each lived on its own GPU
    (from the MoCo CIFAR-10 demo). Sub-batch j is the j-th of ``num_splits`` equal,
    consecutive slices of the batch: one GPU's share. With key shuffling, a query and its
    key are normalised with the statistics of different sub-batches. The running
    statistics move towards the average of the sub-batches' statistics. In evaluation
    mode it is a plain BatchNorm.

    x (B, C, H, W) -> (B, C, H, W), in the memory format of x (channels-last is faster on
    a CPU)."""

    def __init__(self, num_features: int, num_splits: int = 8, **kwargs):
        super().__init__(num_features, **kwargs)
        self.num_splits = num_splits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.shape[0] % self.num_splits:
            # evaluation (running statistics), or no even split
            return super().forward(x)
        # each sub-batch updates its own copy of the running statistics, (S, C)
        running_means = self.running_mean.repeat(self.num_splits, 1)
        running_vars = self.running_var.repeat(self.num_splits, 1)
        out = torch.cat(
            [
                F.batch_norm(
                    sub_batch,
                    running_means[j],
                    running_vars[j],
                    self.weight,
                    self.bias,
                    True,
                    self.momentum,
                    self.eps,
                )
                for j, sub_batch in enumerate(x.chunk(self.num_splits))
            ]
        )
        self.running_mean.copy_(running_means.mean(0))
        self.running_var.copy_(running_vars.mean(0))
        return out


def batch_shuffle(
    x: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random permutation of the batch, and the indices that undo it."""
    order = torch.randperm(x.shape[0], generator=generator).to(x.device)
    return x[order], torch.argsort(order)


def batch_unshuffle(x: torch.Tensor, undo: torch.Tensor) -> torch.Tensor:
    """Put a shuffled batch back in its original order."""
    return x[undo]


# ---------------------------------------------------------------------------
# 5. MoCo
# ---------------------------------------------------------------------------


class EncoderWithHead(nn.Module):
    """A backbone and MoCo v2's projection head (Linear-ReLU-Linear).

    images (B, C, H, W) -> backbone -> (B, feature_dim) -> head -> (B, dim).
    The contrastive loss sees the head's output; the linear probe reads the backbone's.
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int,
        dim: int = 64,
        hidden: int | None = None,
    ):
        super().__init__()
        hidden = hidden or feature_dim
        self.backbone = backbone
        self.head = nn.Sequential(
            nn.Linear(feature_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, dim),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


class MoCo(nn.Module):
    """Momentum Contrast. ``encoder`` maps images to (B, D) features (backbone + head).

    The query encoder is trained by back-propagation; the key encoder is a copy updated
    only by :func:`momentum_update`; the queue holds the K most recent keys (K a multiple
    of the batch size is convenient; wrap-around is handled anyway).
    """

    def __init__(
        self,
        encoder: nn.Module,
        dim: int,
        queue_size: int = 1024,
        momentum: float = 0.99,
        temperature: float = 0.1,
        symmetric: bool = True,
        shuffle_keys: bool = True,
    ):
        super().__init__()
        if queue_size < 1 or dim < 1:
            raise ValueError(
                f"queue_size and dim must be positive; got {queue_size}, {dim}"
            )
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1]; got {momentum}")
        self.encoder_q = encoder
        self.encoder_k = copy.deepcopy(encoder)
        for p in self.encoder_k.parameters():
            p.requires_grad = False
        self.momentum, self.temperature = momentum, temperature
        self.symmetric, self.shuffle_keys = symmetric, shuffle_keys
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, dim), dim=1))
        self.register_buffer("queue_pointer", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Replace the oldest entries of the queue by ``keys`` (B, D), wrapping around."""
        check_tensor("keys", keys, ndim=2, expected=f"(batch, {self.queue.shape[1]})")
        if keys.shape[1] != self.queue.shape[1]:
            raise ValueError(
                f"keys must have dimension {self.queue.shape[1]}; got {shape_str(keys)}"
            )
        size, start = self.queue.shape[0], self.queue_pointer  # a tensor: no GPU sync
        if len(keys) > size:  # more keys than slots: only the newest fit
            start, keys = (start + len(keys) - size) % size, keys[-size:]
        positions = (start + torch.arange(len(keys), device=keys.device)) % size
        self.queue[positions] = keys.to(self.queue.dtype)
        self.queue_pointer.copy_((start + len(keys)) % size)

    @torch.no_grad()
    def keys(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised key features of ``images`` from the key encoder, through a batch
        shuffle (so BatchNorm sub-batches differ from the queries')."""
        if self.shuffle_keys:
            images, undo = batch_shuffle(images)
            return F.normalize(batch_unshuffle(self.encoder_k(images), undo), dim=1)
        return F.normalize(self.encoder_k(images), dim=1)

    def contrastive_loss(
        self, view_q: torch.Tensor, view_k: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q = self.encoder_q(view_q)  # (B, D)
        k = self.keys(view_k)  # (B, D), no gradient
        logits = info_nce_logits(q, k, self.queue.clone().detach(), self.temperature)
        labels = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
        return F.cross_entropy(logits, labels), logits, k

    def forward(
        self, view_1: torch.Tensor, view_2: torch.Tensor
    ) -> tuple[torch.Tensor, dict]:
        """Two views of the same batch -> the InfoNCE loss (symmetrised if asked) and the
        pretext accuracy (how often the positive wins among 1 + K)."""
        momentum_update(self.encoder_q, self.encoder_k, self.momentum)
        loss, logits, k2 = self.contrastive_loss(view_1, view_2)
        keys = [k2]
        if self.symmetric:
            loss_2, logits_2, k1 = self.contrastive_loss(view_2, view_1)
            loss = (loss + loss_2) / 2
            keys.append(k1)
        accuracy = (logits.argmax(dim=1) == 0).float().mean()
        for k in keys:
            self.enqueue(k)
        return loss, {"pretext_accuracy": accuracy.detach()}


# ---------------------------------------------------------------------------
# 6. Judging the features
# ---------------------------------------------------------------------------


@torch.no_grad()
def extract_features(
    encoder: nn.Module,
    images: torch.Tensor,
    batch_size: int = 512,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(N, C, H, W) -> (N, D) L2-normalised features, in evaluation mode."""
    was_training = encoder.training
    encoder.eval()
    chunks = [
        encoder(
            images[i : i + batch_size].to(device)
            if device
            else images[i : i + batch_size]
        ).cpu()
        for i in range(0, len(images), batch_size)
    ]
    encoder.train(was_training)
    return F.normalize(torch.cat(chunks), dim=1)


@torch.no_grad()
def knn_predict(
    features: torch.Tensor,
    bank_features: torch.Tensor,
    bank_labels: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.1,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Weighted kNN (the MoCo CIFAR demo's monitor): for each normalised feature, take the
    k most cosine-similar bank features; each votes for its label with weight
    exp(similarity / temperature). Returns the predicted labels (N,). Computed on the
    bank's device, ``chunk_size`` queries at a time (10 000 x 50 000 similarities at once
    would need 2 GB)."""
    check_tensor("features", features, ndim=2, expected="(N, D), L2-normalised")
    check_tensor(
        "bank_features", bank_features, ndim=2, expected="(M, D), L2-normalised"
    )
    if features.shape[1] != bank_features.shape[1]:
        raise ValueError(
            f"features {shape_str(features)} and bank_features {shape_str(bank_features)} "
            "must have the same dimension"
        )
    if len(bank_labels) != len(bank_features):
        raise ValueError("bank_labels needs one label per bank feature")
    k = min(k, len(bank_features))
    bank_labels = bank_labels.to(bank_features.device)
    predictions = []
    # (n, M) similarities at a time, not (N, M)
    for chunk in features.to(bank_features.device).split(chunk_size):
        similarity = chunk @ bank_features.T  # (n, M)
        top_similarity, top_index = similarity.topk(k, dim=1)  # (n, k)
        weights = (top_similarity / temperature).exp()
        votes = torch.zeros(
            len(chunk), num_classes, device=chunk.device, dtype=weights.dtype
        )
        votes.scatter_add_(1, bank_labels[top_index], weights)
        predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions).to(features.device)


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    max_iter: int = 3000,
) -> float:
    """Accuracy of a logistic regression (scikit-learn) trained on frozen features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    probe.fit(train_features.numpy(), train_labels.numpy())
    return float(probe.score(test_features.numpy(), test_labels.numpy()))
