"""Writers of small data files in the published formats, for tests (IDX, CIFAR-10 bin/py, SVHN .mat).

Each writer builds the bytes from the format's definition (struct, raw bytes, pickle, scipy.io.savemat), not
with the package's own code, and returns the arrays it wrote so tests can compare what is read back.
Other test files use :func:`write_idx_dataset` to make a tiny fake Fashion-MNIST folder.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from pathlib import Path

import numpy as np
import scipy.io

IDX_NAMES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: magic 00 00 08 ndim, big-endian uint32 sizes, the bytes."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_bytes(path: Path, data: bytes, *, gz: bool) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def balanced_labels(n: int, rng: np.random.Generator, num_classes: int = 10) -> np.ndarray:
    """``n`` labels, each class ``n // 10`` or one more times, in random order."""
    return rng.permutation(np.arange(n) % num_classes).astype(np.uint8)


def write_idx_dataset(
    directory,
    n_train: int = 60,
    n_test: int = 20,
    shape: tuple[int, int] = (28, 28),
    seed: int = 0,
    gz: bool = True,
    dot_naming: bool = False,
) -> dict[str, np.ndarray]:
    """Write the 4 standard IDX files (random images, balanced labels) into ``directory``.

    Returns the arrays: train_images (n_train, H, W) uint8, train_labels (n_train,) uint8, test_*.
    ``dot_naming`` uses ``train-images.idx3-ubyte`` instead of ``train-images-idx3-ubyte``.
    """
    directory = Path(directory)
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        out[f"{split}_images"] = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        out[f"{split}_labels"] = balanced_labels(n, rng)
        for kind in ("images", "labels"):
            name = IDX_NAMES[(split, kind)]
            if dot_naming:
                name = name.replace(f"-{kind}-idx", f"-{kind}.idx")
            write_bytes(directory / (name + (".gz" if gz else "")), idx_bytes(out[f"{split}_{kind}"]), gz=gz)
    return out


def cifar_bin_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """3073-byte records: label byte, then the 3072 pixel bytes (R plane, G plane, B plane)."""
    out = bytearray()
    for image, label in zip(images, labels):
        out.append(int(label))
        out += np.asarray(image, dtype=np.uint8).tobytes()
    return bytes(out)


def _random_cifar(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8), balanced_labels(n, rng).astype(np.int64)


def write_cifar_bin_dataset(directory, n_per_batch: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """data_batch_1..5.bin and test_batch.bin with ``n_per_batch`` records each; returns the arrays."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batches = {f"data_batch_{i}.bin": _random_cifar(n_per_batch, rng) for i in range(1, 6)}
    batches["test_batch.bin"] = _random_cifar(n_per_batch, rng)
    for name, (x, y) in batches.items():
        (directory / name).write_bytes(cifar_bin_bytes(x, y))
    return _collect(batches, "test_batch.bin")


class _Python2StylePickler(pickle._Pickler):
    """Pickles bytes and str as Python 2 ``str`` (BINSTRING), as the published CIFAR-10 pickles are written."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj) -> None:
        data = obj.encode("latin-1") if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def cifar_py_bytes(
    images: np.ndarray, labels: np.ndarray, *, protocol: int = 4, python2: bool = False
) -> bytes:
    """A pickled batch dict {b'batch_label', b'labels' (list of int), b'data' (N, 3072) uint8, b'filenames'}."""
    batch = {
        b"batch_label": b"training batch 1 of 5",
        b"labels": [int(v) for v in labels],
        b"data": np.asarray(images, dtype=np.uint8).reshape(len(images), 3072),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
    }
    if not python2:
        return pickle.dumps(batch, protocol=protocol)
    buffer = io.BytesIO()
    _Python2StylePickler(buffer, protocol=2).dump(batch)
    # Python 2's numpy named its module numpy.core; protocol 2 writes globals as text lines.
    return buffer.getvalue().replace(b"numpy._core.", b"numpy.core.")


def write_cifar_py_dataset(
    directory, n_per_batch: int = 4, seed: int = 0, *, protocol: int = 4, python2: bool = False
) -> dict[str, np.ndarray]:
    """data_batch_1..5 and test_batch pickles with ``n_per_batch`` images each; returns the arrays."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batches = {f"data_batch_{i}": _random_cifar(n_per_batch, rng) for i in range(1, 6)}
    batches["test_batch"] = _random_cifar(n_per_batch, rng)
    for name, (x, y) in batches.items():
        (directory / name).write_bytes(cifar_py_bytes(x, y, protocol=protocol, python2=python2))
    return _collect(batches, "test_batch")


def _collect(batches: dict, test_name: str) -> dict[str, np.ndarray]:
    train = [v for k, v in batches.items() if k != test_name]
    return {
        "train_images": np.concatenate([x for x, _ in train]),
        "train_labels": np.concatenate([y for _, y in train]),
        "test_images": batches[test_name][0],
        "test_labels": batches[test_name][1],
    }


def write_svhn_mat(path, images_nchw: np.ndarray, y: np.ndarray) -> None:
    """A ``*_32x32.mat``: 'X' (32, 32, 3, N) uint8, 'y' (N, 1) uint8 (digits 1..10, 10 meaning 0)."""
    x = np.ascontiguousarray(np.asarray(images_nchw, dtype=np.uint8).transpose(2, 3, 1, 0))  # (H, W, C, N)
    scipy.io.savemat(path, {"X": x, "y": np.asarray(y, dtype=np.uint8).reshape(-1, 1)})


def write_svhn_dataset(directory, n_train: int = 12, n_test: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """train_32x32.mat and test_32x32.mat; returns images (N, 3, 32, 32) and labels as digits 0..9."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        digits = balanced_labels(n, rng).astype(np.int64)  # (N,) 0..9
        images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        write_svhn_mat(directory / f"{split}_32x32.mat", images, np.where(digits == 0, 10, digits))
        out[f"{split}_images"], out[f"{split}_labels"] = images, digits
    return out
