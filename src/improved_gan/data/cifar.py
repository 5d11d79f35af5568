"""Readers for CIFAR-10 (Krizhevsky, 2009) as published: the binary and the Python version.

The paper's CIFAR-10 experiments (Sections 6.2 and 6.3) use the 50,000 training images in five batches and the
10,000 test images. Both published versions are read into uint8 images ``(N, 3, 32, 32)`` (the files store
each image as 1024 red, 1024 green, 1024 blue bytes, rows top to bottom, which is exactly that layout) and
int64 labels.

- Binary version (``cifar-10-batches-bin``): ``data_batch_1.bin`` .. ``data_batch_5.bin``, ``test_batch.bin``,
  each a sequence of 3073-byte records: one label byte, then 3072 pixel bytes.
- Python version (``cifar-10-batches-py``): ``data_batch_1`` .. ``data_batch_5``, ``test_batch``, pickles of a
  dict with ``b'data'`` (a uint8 array (N, 3072)) and ``b'labels'`` (a list of N ints). A pickle can run any
  code when loaded, so these files are read ONLY with :class:`RestrictedUnpickler`, whose ``find_class``
  returns just the few numpy functions an array needs (and raises :class:`DataError` for any other global);
  the result's structure is then checked. Files written by Python 2 (the published ones) and by Python 3 both
  load.

The number of records per batch is checked for consistency (data rows against labels, file size a whole number
of records), not against the published 10,000: a smaller consistent batch (as the tests write) is accepted.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from improved_gan.errors import DataError

__all__ = [
    "CIFAR_BIN_FILES",
    "CIFAR_PY_FILES",
    "RestrictedUnpickler",
    "load_cifar_folder",
    "read_cifar_bin",
    "read_cifar_py",
]

_RECORD = 1 + 3 * 32 * 32  # 3073 bytes: label + pixels
_IMAGE_SHAPE = (3, 32, 32)
_NUM_CLASSES = 10
CIFAR_BIN_FILES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
CIFAR_PY_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def _allowed_globals() -> dict[tuple[str, str], object]:
    """The only globals a CIFAR pickle may name: what numpy needs to rebuild arrays, dtypes and scalars.

    Plus ``_codecs.encode`` limited to latin-1 (:func:`_latin1_encode`), with which Python 3 writes bytes at
    pickle protocol 2; it only turns a str into bytes.
    """
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric
    allowed = {}
    for module in ("numpy.core", "numpy._core"):
        allowed[(f"{module}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{module}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{module}.numeric", "_frombuffer")] = numeric._frombuffer  # protocol-5 arrays
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    allowed[("_codecs", "encode")] = _latin1_encode  # Python 3 protocol-2 pickles spell bytes this way
    return allowed


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` restricted to latin-1 text, the only use protocol-2 pickles of bytes make of it."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode allowed only for latin-1 text, not {encoding!r}")
    return text.encode("latin-1")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy's array-rebuilding globals; any other global is a DataError.

    Plain containers (dict, list, bytes, int) need no global. Loading through this class cannot import modules
    or call functions other than those listed in :func:`_allowed_globals`.
    """

    def __init__(self, file, *, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self._path = path
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> object:
        found = self._allowed.get((module, name))
        if found is None:
            raise DataError(
                f"{self._path}: pickle refers to disallowed global {module}.{name} "
                "(expected only numpy arrays, lists and ints)"
            )
        return found


def _check_labels(labels: np.ndarray, path: Path) -> None:
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= _NUM_CLASSES):
        bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
        raise DataError(f"{path}: label {bad} out of range (expected 0..{_NUM_CLASSES - 1})")


def read_cifar_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch: ``(images uint8 (N, 3, 32, 32), labels int64 (N,))``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if len(raw) == 0 or len(raw) % _RECORD:
        raise DataError(
            f"{path}: size {len(raw)} bytes is not a positive multiple of {_RECORD} "
            "(expected 3073-byte CIFAR-10 records: a label byte and 3072 pixels); truncated?"
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _RECORD)  # (N, 3073)
    labels = records[:, 0].astype(np.int64)  # (N,)
    _check_labels(labels, path)
    images = records[:, 1:].reshape(-1, *_IMAGE_SHAPE)  # (N, 3, 32, 32)
    return images, labels


def read_cifar_py(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One Python-version batch, read with :class:`RestrictedUnpickler` and checked."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            batch = RestrictedUnpickler(f, path=path).load()
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (
        Exception
    ) as exc:  # a corrupt pickle can raise nearly anything (EOFError, ValueError, MemoryError...)
        raise DataError(f"{path}: not a readable CIFAR-10 pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict):
        raise DataError(
            f"{path}: pickle holds {type(batch).__name__} (expected a dict with b'data' and b'labels')"
        )
    # Python 2 pickles give bytes keys (b'data'); accept str keys from re-pickled files too.
    batch = {k.encode() if isinstance(k, str) else k: v for k, v in batch.items()}
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} array {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: b'data' is {got} (expected a uint8 array of shape (N, 3072))")
    if not isinstance(labels, list) or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels
    ):
        raise DataError(f"{path}: b'labels' is not a list of ints (expected {data.shape[0]} integer labels)")
    if len(labels) != data.shape[0] or data.shape[0] == 0:
        raise DataError(
            f"{path}: {len(labels)} labels for {data.shape[0]} images (expected equal, positive counts)"
        )
    labels_arr = np.array([int(v) for v in labels], dtype=np.int64)  # (N,)  once per file, not per step
    _check_labels(labels_arr, path)
    return np.ascontiguousarray(data).reshape(-1, *_IMAGE_SHAPE), labels_arr  # (N, 3, 32, 32)


def load_cifar_folder(folder: Path) -> dict[str, torch.Tensor]:
    """Read a ``cifar-10-batches-bin`` or ``cifar-10-batches-py`` folder (binary preferred if both)."""
    folder = Path(folder)
    if (folder / CIFAR_BIN_FILES["train"][0]).is_file() or (folder / CIFAR_BIN_FILES["test"][0]).is_file():
        files, reader = CIFAR_BIN_FILES, read_cifar_bin
    else:
        files, reader = CIFAR_PY_FILES, read_cifar_py
    out = {}
    for split, names in files.items():
        parts = []
        for name in names:
            if not (folder / name).is_file():
                raise DataError(
                    f"{folder / name}: file not found (a CIFAR-10 folder holds {', '.join(names)})"
                )
            parts.append(reader(folder / name))
        out[f"{split}_images"] = torch.from_numpy(np.concatenate([p[0] for p in parts]))  # (N, 3, 32, 32)
        out[f"{split}_labels"] = torch.from_numpy(np.concatenate([p[1] for p in parts]))  # (N,)
    return out
