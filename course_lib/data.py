"""Offline data for every chapter: generated, or shipped inside a dependency.

Nothing here touches the network in the quick profile. Every generator takes a
``seed`` and is deterministic given it.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import URLError

import torch
import torch.nn.functional as F

from ._checks import check_floating, check_size, check_tensor

__all__ = [
    "shuffled_batches",
    "ShuffledBatches",
    "ImageSplit",
    "load_digits_images",
    "random_affine",
    "load_fashion_mnist",
    "DetectionSet",
    "make_digit_canvases",
    "digit_detection_data",
    "shifted_digits",
    "load_cifar10",
    "Regression1D",
    "true_regression_function",
    "make_regression_1d",
    "make_face_scene",
    "tokenize",
    "detokenize",
    "Vocab",
    "TranslationTask",
    "make_number_translation",
]

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
        return (
            f"Regression1D({len(self.x_train)} training points, {len(self.x_test)} held-out "
            f"points, noise std {self.noise_std})"
        )


def make_regression_1d(
    n_train: int = 50,
    n_test: int = 500,
    noise_std: float = 0.5,
    x_max: float = 5.0,
    seed: int = 0,
) -> Regression1D:
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
        y = true_regression_function(x) + noise_std * torch.randn(
            n, generator=generator
        )
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
    yy, xx = torch.meshgrid(
        torch.arange(size) / size, torch.arange(size) / size, indexing="ij"
    )
    image = 0.85 - 0.1 * yy + 0.03 * torch.randn(size, size, generator=generator)
    cy, cx, r = 0.38, 0.62, 0.2
    ink = 0.1
    distance = torch.hypot(yy - cy, xx - cx)
    image[(distance - r).abs() < 0.035] = ink  # outline of the head
    for eye_x in (cx - 0.07, cx + 0.07):  # two eyes
        image[torch.hypot(yy - (cy - 0.05), xx - eye_x) < 0.03] = ink
    image[((distance - 0.11).abs() < 0.025) & (yy > cy + 0.04)] = ink  # a smile
    return image.clamp(0, 1), distance < r + 0.05


# ---------------------------------------------------------------------------
# Chapter 4: a translation task, English number words -> French number words
# ---------------------------------------------------------------------------

_TOKEN = re.compile(r"[^\s,-]+|[,-]")


def tokenize(text: str) -> list[str]:
    """Words, with hyphens and commas as tokens of their own:
    "quatre-vingt-onze" -> ["quatre", "-", "vingt", "-", "onze"]."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string; got {type(text).__name__}")
    return _TOKEN.findall(text)


def detokenize(tokens: Sequence[str]) -> str:
    """The inverse of :func:`tokenize` for text written like num2words' output."""
    return " ".join(tokens).replace(" - ", "-").replace(" ,", ",")


class Vocab:
    """Token <-> id. Ids 0-3 are ``<pad> <bos> <eos> <unk>``; the rest are sorted by
    frequency (then alphabetically) so that the vocabulary is deterministic."""

    PAD, BOS, EOS, UNK = 0, 1, 2, 3
    SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")

    def __init__(self, sentences: Iterable[Sequence[str]]):
        counts = Counter(token for sentence in sentences for token in sentence)
        ordered = sorted(counts, key=lambda t: (-counts[t], t))
        self.itos = list(self.SPECIALS) + [t for t in ordered if t not in self.SPECIALS]
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(
        self, tokens: Sequence[str], add_bos: bool = False, add_eos: bool = True
    ) -> list[int]:
        ids = [self.stoi.get(t, self.UNK) for t in tokens]
        return ([self.BOS] if add_bos else []) + ids + ([self.EOS] if add_eos else [])

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids -> tokens, stopping at the first <eos> and skipping <pad> and <bos>."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.EOS:
                break
            if i not in (self.PAD, self.BOS):
                out.append(self.itos[i] if 0 <= i < len(self.itos) else "<unk>")
        return out


class ShuffledBatches:
    """Mini-batches of ``data`` in a new random order at every pass (see
    :func:`shuffled_batches`); re-iterable, so one object serves every epoch."""

    def __init__(
        self,
        data,
        batch_size: int,
        generator: torch.Generator | None,
        drop_last: bool,
        shuffle: bool,
    ):
        self.data, self.batch_size, self.generator = data, batch_size, generator
        self.drop_last, self.shuffle = drop_last, shuffle
        parts = data if isinstance(data, tuple) else (data,)
        self.length = len(parts[0])
        if any(len(part) != self.length for part in parts):
            raise ValueError(
                f"every part of data must have the same length; got {[len(p) for p in parts]}"
            )

    def __len__(self) -> int:
        full, rest = divmod(self.length, self.batch_size)
        return full + (rest > 0 and not self.drop_last)

    def __iter__(self):
        order = (
            torch.randperm(self.length, generator=self.generator)
            if self.shuffle
            else torch.arange(self.length)
        )
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            if isinstance(self.data, tuple):
                yield tuple(_take(part, index) for part in self.data)
            else:
                yield _take(self.data, index)


def _take(part, index: torch.Tensor):
    if isinstance(part, torch.Tensor):
        return part[index.to(part.device)]
    return [part[i] for i in index.tolist()]


def shuffled_batches(
    data,
    batch_size: int,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    shuffle: bool = True,
) -> ShuffledBatches:
    """Mini-batches of ``data``: a tensor, a list, or a tuple of them indexed together
    (e.g. ``(images, labels)``), cut along the first dimension into ``batch_size`` pieces
    in a fresh random order every pass (drawn from ``generator``). ``drop_last`` drops
    a last, smaller batch. The result is re-iterable: hand it to ``train.fit`` for any
    number of steps or epochs."""
    return ShuffledBatches(
        data, check_size("batch_size", batch_size), generator, drop_last, shuffle
    )


def _pad(sequences: list[list[int]], pad_id: int) -> torch.Tensor:
    length = max(len(s) for s in sequences)
    return torch.tensor(
        [s + [pad_id] * (length - len(s)) for s in sequences], dtype=torch.long
    )


def _check_sentences(sentences) -> None:
    if isinstance(sentences, str):
        raise TypeError(
            f"sentences must be a list of sentences; got one string, {sentences!r}. "
            "Wrap it in a list: [sentence]"
        )
    if not len(sentences):
        raise ValueError("sentences is empty; give at least one sentence")


@dataclass
class TranslationTask:
    """Sentence pairs (source, target) split into train and test, with their vocabularies."""

    train_pairs: list[tuple[str, str]]
    valid_pairs: list[tuple[str, str]]
    test_pairs: list[tuple[str, str]]
    src_vocab: Vocab
    tgt_vocab: Vocab
    # harder held-out sentences, by kind (see make_number_translation)
    hard_test_pairs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def encode_source(self, sentences: Sequence[str]) -> torch.Tensor:
        """Source sentences -> (B, S) ids ending in <eos>, padded."""
        _check_sentences(sentences)
        return _pad([self.src_vocab.encode(tokenize(s)) for s in sentences], Vocab.PAD)

    def encode_target(
        self, sentences: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Target sentences -> decoder input (<bos> w1 ... wn) and labels (w1 ... wn <eos>),
        both (B, T), padded."""
        _check_sentences(sentences)
        ids = [
            self.tgt_vocab.encode(tokenize(s), add_bos=True, add_eos=True)
            for s in sentences
        ]
        return _pad([i[:-1] for i in ids], Vocab.PAD), _pad(
            [i[1:] for i in ids], Vocab.PAD
        )

    def decode_target(self, ids: torch.Tensor) -> list[str]:
        """(B, L) generated ids -> target sentences (stopping at <eos>)."""
        return [detokenize(self.tgt_vocab.decode(row)) for row in ids.tolist()]

    def batches(
        self,
        pairs: Sequence[tuple[str, str]],
        batch_size: int,
        generator: torch.Generator | None = None,
    ) -> list[tuple[torch.Tensor, ...]]:
        """Padded (src, tgt_in, tgt_out) batches; shuffled if a generator is given.

        (Sorting pairs by length into batches would cut padding by a quarter here, but
        batches of all-short or all-long numbers made training markedly worse.)"""
        return [
            (
                self.encode_source([s for s, _ in chunk]),
                *self.encode_target([t for _, t in chunk]),
            )
            for chunk in shuffled_batches(
                list(pairs), batch_size, generator, shuffle=generator is not None
            )
        ]

    def __repr__(self) -> str:
        return (
            f"TranslationTask(train {len(self.train_pairs)}, valid {len(self.valid_pairs)}, "
            f"test {len(self.test_pairs)}"
            + "".join(f", {kind} {len(p)}" for kind, p in self.hard_test_pairs.items())
            + f"; vocab {len(self.src_vocab)} -> {len(self.tgt_vocab)})"
        )


UNSEEN_ENDINGS = (215, 713, 918)  # a hundreds word with a teen: deux cent quinze ...
LONGEST_TRAINING_TARGET = 13  # French words, hyphens included


@functools.lru_cache(maxsize=None)
def _french_length(n: int) -> int:
    """Words (hyphens included) of num2words(n, lang="fr"), from the lengths of its
    thousands and its remainder below 1000 (a test checks it against num2words)."""
    from num2words import num2words

    if n < 1000 or n >= 1_000_000:
        return len(tokenize(num2words(n, lang="fr")))
    thousands, rest = divmod(n, 1000)
    return (
        (0 if thousands == 1 else _french_length(thousands))  # "mille", not "un mille"
        + 1
        + (_french_length(rest) if rest else 0)
    )


def make_number_translation(
    n_train: int = 20_000,
    n_test: int = 1_000,
    max_number: int = 100_000,
    small_numbers: int = 1_000,
    n_valid: int = 500,
    seed: int = 0,
    n_hard: int = 0,
) -> TranslationTask:
    """English number words -> French number words, e.g. "seventy-one" -> "soixante et onze".

    The pool of numbers is every number below ``small_numbers`` plus distinct random numbers
    below ``max_number``; it is shuffled and split into train, validation (for monitoring
    training) and test, so validation and test numbers are never seen in training.
    Vocabularies are built from the training sentences only. Needs ``num2words``.

    Two kinds of number never enter the pool, so that ``n_hard`` > 0 can test them in
    ``task.hard_test_pairs`` (up to ``n_hard`` sentences of each kind):

    - ``"unseen combination"``: numbers ending in 215, 713 or 918 (``UNSEEN_ENDINGS``).
      Training sees "deux cent", "sept cent", "quinze", "treize" ..., never these pairs.
    - ``"longer output"``: French sentences longer than ``LONGEST_TRAINING_TARGET``
      words (hyphens count), e.g. 97 797, "quatre-vingt-dix-sept mille sept cent
      quatre-vingt-dix-sept"; 0.3 % of the numbers below 100 000.

    A third kind lies outside the pool's range: ``"beyond the range"``, numbers from
    ``max_number`` to ``10 * max_number`` (and of neither kind above).
    """
    from num2words import num2words

    total = n_train + n_valid + n_test
    if total > max_number:
        raise ValueError(
            f"n_train + n_valid + n_test ({total}) must not exceed max_number ({max_number})"
        )
    if n_train < 1 or n_test < 1 or n_valid < 0 or n_hard < 0:
        raise ValueError(
            "n_train and n_test must be positive, n_valid and n_hard >= 0; got "
            f"{n_train}, {n_test}, {n_valid}, {n_hard}"
        )
    generator = torch.Generator().manual_seed(seed)

    def kind(n: int) -> str:
        if n % 1000 in UNSEEN_ENDINGS:
            return "unseen combination"
        if _french_length(n) > LONGEST_TRAINING_TARGET:
            return "longer output"
        return "beyond the range" if n >= max_number else "ordinary"

    def shuffled(low: int, high: int) -> list[int]:
        return (torch.randperm(high - low, generator=generator) + low).tolist()

    small = list(range(min(small_numbers, max_number)))
    numbers = [n for n in small if kind(n) == "ordinary"]
    hard: dict[str, list[int]] = {
        "unseen combination": [],
        "longer output": [],
        "beyond the range": [],
    }
    for n in shuffled(len(small), max_number):
        k = kind(n)
        if k == "ordinary":
            if len(numbers) < total:
                numbers.append(n)
        elif len(hard[k]) < n_hard:
            hard[k].append(n)
        if len(numbers) == total and all(
            len(hard[k]) == n_hard for k in ("unseen combination", "longer output")
        ):
            break
    if len(numbers) < total:
        raise ValueError(
            f"only {len(numbers)} numbers below max_number={max_number} are of the "
            f"ordinary kind; ask for fewer than n_train + n_valid + n_test = {total}"
        )
    if n_hard:
        beyond = (n for n in shuffled(max_number, 10 * max_number))
        while len(hard["beyond the range"]) < n_hard:
            n = next(beyond)
            if kind(n) == "beyond the range":
                hard["beyond the range"].append(n)

    def pairs(numbers: list[int]) -> list[tuple[str, str]]:
        return [(num2words(n, lang="en"), num2words(n, lang="fr")) for n in numbers]

    order = torch.randperm(len(numbers), generator=generator)[:total].tolist()
    numbers = [numbers[i] for i in order]  # a random subset when small ones suffice
    train_pairs = pairs(numbers[:n_train])
    return TranslationTask(
        train_pairs,
        pairs(numbers[n_train : n_train + n_valid]),
        pairs(numbers[n_train + n_valid :]),
        Vocab(tokenize(s) for s, _ in train_pairs),
        Vocab(tokenize(t) for _, t in train_pairs),
        {k: pairs(v) for k, v in hard.items()} if n_hard else {},
    )


# ---------------------------------------------------------------------------
# Chapters 5-7: small images (scikit-learn's digits, offline; Fashion-MNIST, optional)
# ---------------------------------------------------------------------------


@dataclass
class ImageSplit:
    """Images (N, C, H, W) in [0, 1] with integer labels (N,), split into train and test."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    name: str = "images"

    def __repr__(self) -> str:
        return (
            f"ImageSplit({self.name}: {len(self.x_train)} train, {len(self.x_test)} test, "
            f"images {tuple(self.x_train.shape[1:])})"
        )

    def subset(self, fraction: float, seed: int = 0) -> "ImageSplit":
        """A stratified fraction of the training set (the test set is kept whole)."""
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1]; got {fraction}")
        if fraction == 1:
            return self
        from sklearn.model_selection import train_test_split

        keep, _ = train_test_split(
            torch.arange(len(self.y_train)).numpy(),
            train_size=fraction,
            stratify=self.y_train.numpy(),
            random_state=seed,
        )
        keep = torch.as_tensor(keep)
        return ImageSplit(
            self.x_train[keep],
            self.y_train[keep],
            self.x_test,
            self.y_test,
            f"{self.name}, {fraction:.0%} of train",
        )


def load_digits_images(
    size: int = 16, test_fraction: float = 0.2, seed: int = 0
) -> ImageSplit:
    """scikit-learn's bundled 8 x 8 handwritten digits (1797 images, no download), scaled
    to [0, 1], upsampled (bilinear) to ``size`` x ``size``, split with stratification."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer >= 8; got {size!r}")
    digits = load_digits()
    # (N, 1, 8, 8)
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    if size != 8:
        images = F.interpolate(
            images, size=(size, size), mode="bilinear", align_corners=False
        )
    labels = torch.tensor(digits.target, dtype=torch.long)
    train_idx, test_idx = train_test_split(
        torch.arange(len(labels)).numpy(),
        test_size=test_fraction,
        stratify=labels.numpy(),
        random_state=seed,
    )
    train_idx, test_idx = torch.as_tensor(train_idx), torch.as_tensor(test_idx)
    return ImageSplit(
        images[train_idx].clamp(0, 1),
        labels[train_idx],
        images[test_idx].clamp(0, 1),
        labels[test_idx],
        f"digits {size}x{size}",
    )


def random_affine(
    images: torch.Tensor,
    rotation: float = 15.0,
    translate: float = 0.1,
    scale: tuple[float, float] = (0.9, 1.1),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A random rotation (up to ``rotation`` degrees), shift (up to ``translate`` of the
    size) and magnification (in ``scale``; above 1 zooms in) of every image of a
    (B, C, H, W) batch, as one affine warp (``affine_grid`` + ``grid_sample``; empty
    areas are 0). The book's one geometric augmentation (``moco.augment`` uses it too)."""
    check_tensor("images", images, ndim=4, expected="(batch, channels, height, width)")
    check_floating("images", images)
    b, device = images.shape[0], images.device

    def uniform(low, high):
        return low + (high - low) * torch.rand(b, generator=generator).to(device)

    angle = uniform(-rotation, rotation) * math.pi / 180
    zoom = uniform(*scale)
    shift_x, shift_y = (
        uniform(-translate, translate) * 2,
        uniform(-translate, translate) * 2,
    )
    # the grid shrinks to zoom in
    cos, sin = (
        torch.cos(angle) / zoom,
        torch.sin(angle) / zoom,
    )
    # (B, 2, 3)
    theta = torch.stack(
        [torch.stack([cos, -sin, shift_x], -1), torch.stack([sin, cos, shift_y], -1)], 1
    )
    grid = F.affine_grid(
        theta.to(images.dtype), list(images.shape), align_corners=False
    )
    return F.grid_sample(images, grid, padding_mode="zeros", align_corners=False)


def _download_failed(name: str, root: str, error: Exception) -> RuntimeError:
    return RuntimeError(
        f"could not download {name} into {root!r} ({type(error).__name__}: {error}). Without "
        f"internet, copy the data set there from a machine that has it, or run the quick "
        f"profile, which needs no download (on Colab, make sure the runtime has internet)."
    )


def load_fashion_mnist(root: str, download: bool = False) -> ImageSplit:
    """Fashion-MNIST (28 x 28 grey, 60 000 + 10 000 images) through torchvision, for the full
    profile. The files are read from ``root`` in torchvision's layout
    (``root/FashionMNIST/raw/*-ubyte``); ``download=True`` fetches them first if they are
    missing (needs the network)."""
    from torchvision.datasets import FashionMNIST

    raw = Path(root) / "FashionMNIST" / "raw"
    if not (raw / "train-images-idx3-ubyte").exists():
        if not download:
            raise FileNotFoundError(
                f"no Fashion-MNIST in {raw}; pass download=True (needs the network)"
            )
        try:
            FashionMNIST(root, train=True, download=True)  # fetches both splits
        except (URLError, RuntimeError) as error:  # torchvision wraps URLError
            raise _download_failed("Fashion-MNIST", root, error) from error

    def load(train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        dataset = FashionMNIST(root, train=train, download=False)
        return dataset.data[:, None].float() / 255.0, dataset.targets.long()

    x_train, y_train = load(True)
    x_test, y_test = load(False)
    return ImageSplit(x_train, y_train, x_test, y_test, "Fashion-MNIST 28x28")


# ---------------------------------------------------------------------------
# Chapter 6: canvases with several digits, for detection
# ---------------------------------------------------------------------------

INK_THRESHOLD = 0.25  # a pixel brighter than this (of a digit scaled to [0, 1]) is ink


@dataclass
class DetectionSet:
    """Canvases (N, 1, S, S) in [0, 1] and, per canvas, ``labels`` (M,) and ``boxes`` (M, 4)
    as normalised (cx, cy, w, h) -- DETR's target format."""

    images: torch.Tensor
    targets: list[dict[str, torch.Tensor]]

    def __len__(self) -> int:
        return len(self.targets)

    def __repr__(self) -> str:
        objects = sum(len(t["labels"]) for t in self.targets)
        return f"DetectionSet({len(self)} canvases {tuple(self.images.shape[-2:])}, {objects} objects)"

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> ShuffledBatches:
        """(images, targets) batches, re-iterable; shuffled if a generator is given."""
        return shuffled_batches(
            (self.images, self.targets),
            batch_size,
            generator,
            shuffle=generator is not None,
        )


def make_digit_canvases(
    n: int,
    digit_images: torch.Tensor,
    digit_labels: torch.Tensor,
    canvas_size: int = 64,
    min_size: int = 10,
    max_size: int = 24,
    min_objects: int = 1,
    max_objects: int = 4,
    noise: float = 0.05,
    seed: int = 0,
) -> DetectionSet:
    """Paste 1-4 digits (from ``digit_images`` (K, 8, 8) in [0, 1]) at random positions and
    sizes on dark canvases, without overlap (1 pixel apart at least), add Gaussian noise.

    Each box is *tight*: the smallest pixel-aligned box containing the digit's ink
    (pixels > ``INK_THRESHOLD`` after resizing), not the pasted square.
    """
    if digit_images.dim() != 3:
        raise ValueError(
            f"digit_images must be (K, height, width); got {tuple(digit_images.shape)}"
        )
    if not 1 <= min_objects <= max_objects:
        raise ValueError(
            f"need 1 <= min_objects <= max_objects; got {min_objects}, {max_objects}"
        )
    if not 1 <= min_size <= max_size:
        raise ValueError(
            f"need 1 <= min_size <= max_size; got min_size={min_size}, max_size={max_size}"
        )
    if max_size > canvas_size:
        raise ValueError(
            f"max_size ({max_size}) must fit in the canvas ({canvas_size})"
        )
    g = torch.Generator().manual_seed(seed)

    def randint(low: int, high: int) -> int:  # inclusive
        return int(torch.randint(low, high + 1, (1,), generator=g))

    images = torch.zeros(n, 1, canvas_size, canvas_size)
    targets = []
    for i in range(n):
        placed: list[tuple[int, int, int]] = []  # (x, y, size) of pasted squares
        labels, boxes = [], []
        for _ in range(randint(min_objects, max_objects)):
            for _attempt in range(100):
                size = randint(min_size, max_size)
                x, y = randint(0, canvas_size - size), randint(0, canvas_size - size)
                if all(
                    x + size + 1 <= px
                    or px + ps + 1 <= x
                    or y + size + 1 <= py
                    or py + ps + 1 <= y
                    for px, py, ps in placed
                ):
                    break
            else:
                continue  # no room left on this canvas
            k = randint(0, len(digit_labels) - 1)
            digit = F.interpolate(
                digit_images[k][None, None],
                size=(size, size),
                mode="bilinear",
                align_corners=False,
            )[0, 0].clamp(0, 1)
            ink = digit > INK_THRESHOLD
            rows, cols = ink.any(1).nonzero().flatten(), ink.any(0).nonzero().flatten()
            if len(rows) == 0:
                continue
            images[i, 0, y : y + size, x : x + size] = torch.maximum(
                images[i, 0, y : y + size, x : x + size], digit
            )
            x1, x2 = x + cols[0].item(), x + cols[-1].item() + 1
            y1, y2 = y + rows[0].item(), y + rows[-1].item() + 1
            boxes.append([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
            labels.append(int(digit_labels[k]))
            placed.append((x, y, size))
        targets.append(
            {
                "labels": torch.tensor(labels, dtype=torch.long),
                "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
                / canvas_size,
            }
        )
    if noise:
        images = (images + noise * torch.randn(images.shape, generator=g)).clamp(0, 1)
    return DetectionSet(images, targets)


def digit_detection_data(
    n_train: int = 4000,
    n_test: int = 500,
    canvas_size: int = 64,
    max_objects: int = 4,
    seed: int = 0,
    **kwargs,
) -> tuple[DetectionSet, DetectionSet]:
    """Train and test canvases built from **disjoint** digit images (a stratified split of
    scikit-learn's digits), so that test canvases show handwriting never seen in training."""
    split = load_digits_images(8, test_fraction=0.3, seed=seed)
    train = make_digit_canvases(
        n_train,
        split.x_train[:, 0],
        split.y_train,
        canvas_size,
        max_objects=max_objects,
        seed=seed,
        **kwargs,
    )
    test = make_digit_canvases(
        n_test,
        split.x_test[:, 0],
        split.y_test,
        canvas_size,
        max_objects=max_objects,
        seed=seed + 1,
        **kwargs,
    )
    return train, test


# ---------------------------------------------------------------------------
# Chapter 7: a harder view of the digits, and CIFAR-10 for the full profile
# ---------------------------------------------------------------------------


def shifted_digits(
    n_train: int = 1500,
    n_test: int = 500,
    canvas_size: int = 32,
    min_size: int = 12,
    max_size: int = 20,
    noise: float = 0.1,
    seed: int = 0,
) -> ImageSplit:
    """One digit per noisy ``canvas_size`` canvas, at a random position and size: the same
    handwriting as :func:`load_digits_images`, but where raw pixels no longer line up.
    Train and test canvases use disjoint digit images (the same split as
    ``load_digits_images(seed=seed)``)."""
    split = load_digits_images(8, seed=seed)

    def canvases(x, y, n, offset):
        made = make_digit_canvases(
            n,
            x[:, 0],
            y,
            canvas_size,
            min_size=min_size,
            max_size=max_size,
            min_objects=1,
            max_objects=1,
            noise=noise,
            seed=seed + offset,
        )
        return made.images, torch.stack([t["labels"][0] for t in made.targets])

    x_train, y_train = canvases(split.x_train, split.y_train, n_train, 11)
    x_test, y_test = canvases(split.x_test, split.y_test, n_test, 12)
    return ImageSplit(
        x_train, y_train, x_test, y_test, f"shifted digits {canvas_size}x{canvas_size}"
    )


def load_cifar10(root: str, download: bool = False) -> ImageSplit:
    """CIFAR-10 (32 x 32 colour, 50 000 + 10 000 images), the MoCo CIFAR demo's data, for
    chapter 7's full profile. Reads the "python version" pickles in
    ``root/cifar-10-batches-py`` (``data_batch_1`` ... ``data_batch_5``, ``test_batch``);
    ``download=True`` fetches them first through torchvision if they are missing (needs
    the network)."""
    import pickle

    folder = Path(root) / "cifar-10-batches-py"
    if download and not folder.is_dir():
        from torchvision.datasets import CIFAR10

        try:
            CIFAR10(root, train=True, download=True)
        except URLError as error:  # no network
            raise _download_failed("CIFAR-10", root, error) from error
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no CIFAR-10 in {folder}; pass download=True (needs the network) "
            "or unpack cifar-10-python.tar.gz into root"
        )

    def load(names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = [], []
        for name in names:
            with open(folder / name, "rb") as file:
                batch = pickle.load(file, encoding="bytes")
            images.append(torch.as_tensor(batch[b"data"]).view(-1, 3, 32, 32))
            labels.append(torch.as_tensor(batch[b"labels"]))
        return torch.cat(images).float() / 255.0, torch.cat(labels).long()

    x_train, y_train = load([f"data_batch_{i}" for i in range(1, 6)])
    x_test, y_test = load(["test_batch"])
    return ImageSplit(x_train, y_train, x_test, y_test, "CIFAR-10 32x32")
