"""Fake data sets in the published file formats, for benchmarks on a machine that has none (a fresh GPU machine).

Usage: ``python3 benchmarks/fake_data.py DIR [--small]``: writes ``DIR/fashion-mnist`` (the 4 gzipped IDX files)
and ``DIR/cifar10/cifar-10-batches-bin`` (the 6 binary batch files); pass ``DIR/fashion-mnist`` or ``DIR/cifar10``
as ``--data-dir``. Full size by default (60,000 + 10,000 and 50,000 + 10,000 images, so an evaluation costs what
it costs on the real test sets); ``--small``: 600 + 100 and 5 x 100 + 20.

Formats, written from their definitions with numpy and struct only (no library code, no network):

- IDX (Fashion-MNIST, MNIST): bytes ``00 00 08 ndim``, the sizes as big-endian uint32, the unsigned bytes;
- CIFAR-10 binary: 3073-byte records, one label byte then 3072 pixel bytes (R plane, G plane, B plane, 32 x 32).

Images are uniform random bytes, labels cycle 0..9 (balanced, so any ``labels_per_class`` up to N / 10 exists).
"""

from __future__ import annotations

import argparse
import gzip
import struct
from pathlib import Path

import numpy as np

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
CIFAR_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file of ``array`` (any rank)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_fake_idx(folder: Path, n_train: int = 60_000, n_test: int = 10_000, seed: int = 0) -> Path:
    """Fashion-MNIST-shaped IDX files (28 x 28 images) in ``folder``; returns ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, array in (("images", images), ("labels", labels)):
            (folder / IDX_FILES[f"{split}_{kind}"]).write_bytes(
                gzip.compress(idx_bytes(array), compresslevel=1)
            )
    return folder


def write_fake_cifar(root: Path, per_batch: int = 10_000, test: int = 10_000, seed: int = 0) -> Path:
    """CIFAR-10 binary batches in ``root/cifar-10-batches-bin``; returns that folder (``root`` is the data dir)."""
    folder = Path(root) / "cifar-10-batches-bin"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in CIFAR_FILES:
        n = test if name == "test_batch.bin" else per_batch
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        (folder / name).write_bytes(np.concatenate([labels[:, None], images], axis=1).tobytes())
    return folder


def write_fake_data(root: Path, *, small: bool = False) -> dict[str, Path]:
    """Both sets under ``root``; returns the ``--data-dir`` of each preset's data set."""
    root = Path(root)
    if small:
        write_fake_idx(root / "fashion-mnist", n_train=600, n_test=100)
        write_fake_cifar(root / "cifar10", per_batch=100, test=20)
    else:
        write_fake_idx(root / "fashion-mnist")
        write_fake_cifar(root / "cifar10")
    return {"fashion-mnist": root / "fashion-mnist", "cifar10": root / "cifar10"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--small", action="store_true")
    args = ap.parse_args(argv)
    for name, path in write_fake_data(args.dir, small=args.small).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
