"""Reader for the IDX format of MNIST, Fashion-MNIST and KMNIST (LeCun et al.'s ``*-idx3-ubyte`` files).

The paper (Section 6.1) trains on MNIST; our default real data set is Fashion-MNIST, published in the same
format. An IDX file is a 4-byte magic number ``00 00 TT DD`` (TT = element type, 0x08 for unsigned bytes; DD =
number of dimensions), DD big-endian uint32 sizes, then the elements in row-major order. Images are ``(N, H,
W)`` (magic 0x00000803), labels ``(N,)`` (magic 0x00000801).

Files may be gzip-compressed (``.gz``, as published) or raw, and both namings in use are accepted:
``train-images-idx3-ubyte[.gz]`` (the original site) and ``train-images.idx3-ubyte[.gz]`` (a common mirror).

Every check (magic, element type, the header's sizes against the file's length, image and label counts, label
range) raises :class:`~improved_gan.errors.DataError` with a one-line message naming the file. The element
count is checked against the header and the file size, not against the published split sizes: a consistent
smaller file (as the tests write) is accepted; :mod:`improved_gan.data.registry` checks the split sizes of a
system package. Reading is one ``np.frombuffer`` over the decompressed bytes, no per-example Python work.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from improved_gan.errors import DataError

__all__ = ["IDX_SPLITS", "find_idx_file", "load_idx_folder", "load_idx_split", "read_bytes", "read_idx"]

_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08
# split -> file-name stem used by the published files ("train" and "t10k").
IDX_SPLITS = {"train": "train", "test": "t10k"}


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped if gzip-compressed. A ``.gz`` name on a non-gzip file is an error."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    is_gzip = raw[:2] == _GZIP_MAGIC
    if path.suffix == ".gz" and not is_gzip:
        raise DataError(f"{path}: not a gzip file (expected gzip magic 1f 8b because the name ends in .gz)")
    if not is_gzip:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; EOFError: truncated stream
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from None


def read_idx(path: Path, *, ndim: int) -> np.ndarray:
    """Parse an unsigned-byte IDX file with ``ndim`` dimensions into a read-only uint8 array of its shape."""
    path = Path(path)
    data = read_bytes(path)
    expected_magic = (_UBYTE << 8) | ndim
    if len(data) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(data)} bytes; expected a 4-byte magic number)")
    (magic,) = struct.unpack(">I", data[:4])
    if magic != expected_magic:
        raise DataError(
            f"{path}: wrong magic number 0x{magic:08x} (expected 0x{expected_magic:08x}: "
            f"unsigned-byte IDX with {ndim} dimension{'s' if ndim > 1 else ''})"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes; expected {header})")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    count = int(np.prod(shape, dtype=object))
    if len(data) - header != count:
        what = "truncated" if len(data) - header < count else "trailing bytes after the data"
        raise DataError(
            f"{path}: {what}: header declares shape {tuple(shape)} = {count} bytes of data, "
            f"file holds {len(data) - header}"
        )
    if shape[0] == 0:
        raise DataError(f"{path}: IDX file holds no examples (expected at least one)")
    return np.frombuffer(data, dtype=np.uint8, count=count, offset=header).reshape(shape)


def find_idx_file(folder: Path, split: str, kind: str) -> Path | None:
    """The file for ``split`` ('train'/'test') and ``kind`` ('images'/'labels') in ``folder``, or None.

    Tries ``{stem}-{kind}-idx{d}-ubyte`` and ``{stem}-{kind}.idx{d}-ubyte``, raw first, then ``.gz``.
    """
    stem = IDX_SPLITS[split]
    d = 3 if kind == "images" else 1
    for name in (f"{stem}-{kind}-idx{d}-ubyte", f"{stem}-{kind}.idx{d}-ubyte"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def load_idx_split(
    folder: Path, split: str, *, num_classes: int = 10
) -> tuple[torch.Tensor, torch.Tensor, tuple[Path, Path]]:
    """A split: ``(images uint8 (N, 1, H, W), labels int64 (N,), (image_path, label_path))``."""
    folder = Path(folder)
    paths = []
    for kind in ("images", "labels"):
        found = find_idx_file(folder, split, kind)
        if found is None:
            d = 3 if kind == "images" else 1
            stem = IDX_SPLITS[split]
            raise DataError(
                f"{folder}: missing {stem}-{kind}-idx{d}-ubyte[.gz] "
                f"(or {stem}-{kind}.idx{d}-ubyte[.gz]) for the {split} split"
            )
        paths.append(found)
    image_path, label_path = paths
    images = read_idx(image_path, ndim=3)  # (N, H, W)
    labels = read_idx(label_path, ndim=1)  # (N,)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{label_path}: {labels.shape[0]} labels but {image_path.name} holds {images.shape[0]} images "
            "(expected equal counts)"
        )
    if int(labels.max()) >= num_classes:
        bad = int(labels.max())
        raise DataError(f"{label_path}: label {bad} out of range (expected 0..{num_classes - 1})")
    x = torch.from_numpy(images.copy()).unsqueeze(1)  # (N, 1, H, W) uint8
    y = torch.from_numpy(labels.astype(np.int64))  # (N,) int64
    return x, y, (image_path, label_path)


def load_idx_folder(folder: Path, *, num_classes: int = 10) -> dict[str, torch.Tensor]:
    """Read both splits of an IDX data set in ``folder``; keys train_images/labels and test_images/labels."""
    train_x, train_y, (train_path, _) = load_idx_split(folder, "train", num_classes=num_classes)
    test_x, test_y, (test_path, _) = load_idx_split(folder, "test", num_classes=num_classes)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(
            f"{test_path}: image size {tuple(test_x.shape[2:])} differs from {train_path.name}'s "
            f"{tuple(train_x.shape[2:])} (expected the same size in both splits)"
        )
    return {"train_images": train_x, "train_labels": train_y, "test_images": test_x, "test_labels": test_y}
