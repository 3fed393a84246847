"""Tiny stand-ins for the full profile's downloaded data sets, in their real on-disk formats.

    python -m tools.standin_data DIR        # write them into DIR

A smoke run (``COURSE_SMOKE=1``) of the full profile points ``COURSE_DATA`` at such a
folder, so that the real loading code (``course_lib.data.load_fashion_mnist`` and
``load_cifar10``) reads real file formats offline:

- Fashion-MNIST: the four idx files of ``DIR/FashionMNIST/raw/`` (big-endian magic
  number 2051 for images, 2049 for labels, then the sizes, then unsigned bytes);
- CIFAR-10: the "python version" pickles ``DIR/cifar-10-batches-py/data_batch_1`` ...
  ``data_batch_5`` and ``test_batch`` (a dict with ``b"data"``, (N, 3072) uint8 rows,
  channel-major, and ``b"labels"``, a list of ints).

The images are noise whose brightness depends on the class: enough to train for a few
steps, nothing to learn from.
"""

from __future__ import annotations

import pickle
import struct
import sys
from pathlib import Path

import numpy as np


def _images(
    rng: np.random.Generator, labels: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    base = rng.integers(0, 128, (len(labels), *shape))
    return np.clip(base + 12 * labels.reshape(-1, *([1] * len(shape))), 0, 255).astype(
        np.uint8
    )


def write_fashion_mnist(
    root: Path, n_train: int = 1000, n_test: int = 200, seed: int = 0
) -> Path:
    raw = Path(root) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in [("train", n_train), ("t10k", n_test)]:
        labels = np.arange(n) % 10  # every class, for stratified subsets
        images = _images(rng, labels, (28, 28))
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">4i", 2051, n, 28, 28) + images.tobytes()
        )
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">2i", 2049, n) + labels.astype(np.uint8).tobytes()
        )
    return raw


def write_cifar10(
    root: Path, n_per_batch: int = 60, n_test: int = 100, seed: int = 0
) -> Path:
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, n in [
        *((f"data_batch_{i}", n_per_batch) for i in range(1, 6)),
        ("test_batch", n_test),
    ]:
        labels = np.arange(n) % 10
        batch = {
            b"data": _images(rng, labels, (3 * 32 * 32,)),
            b"labels": labels.tolist(),
        }
        with open(folder / name, "wb") as file:
            pickle.dump(batch, file)
    return folder


def write_all(root: Path) -> Path:
    write_fashion_mnist(root)
    write_cifar10(root)
    return Path(root)


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) == 2 else 2)
    print(f"stand-in data sets written to {write_all(Path(sys.argv[1]))}")
