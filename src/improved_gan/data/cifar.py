"""Readers for CIFAR-10 (Krizhevsky, 2009) as published: the binary and the Python version.

The paper's CIFAR-10 experiments (Sections 6.2 and 6.3) use the 50,000 training images in five batches and the
10,000 test images. Both published versions are read into uint8 images ``(N, 3, 32, 32)`` (the files store
each image as 1024 red, 1024 green, 1024 blue bytes, rows top to bottom, which is exactly that layout) and
int64 labels.

- Binary version (``cifar-10-batches-bin``): ``data_batch_1.bin`` .. ``data_batch_5.bin``, ``test_batch.bin``,
  each a sequence of 3073-byte records: one label byte, then 3072 pixel bytes.
- Python version (``cifar-10-batches-py``): ``data_batch_1`` .. ``data_batch_5``, ``test_batch``, pickles of a
  dict with ``b'data'`` (a uint8 array (N, 3072)) and ``b'labels'`` (a list of N ints). A pickle can run any
  code when loaded, so these files are read ONLY with ``RestrictedUnpickler``, whose ``find_class``
  returns just the few numpy functions an array needs (and raises :class:`~improved_gan.errors.DataError` for any other global);
  the result's structure is then checked. Files written by Python 2 (the published ones) and by Python 3 both
  load.

The number of records per batch is checked for consistency (data rows against labels, file size a whole number
of records), not against the published 10,000: a smaller consistent batch (as the tests write) is accepted.
"""

from __future__ import annotations

import io
import pickle
import pickletools
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


_INTEGER_DTYPES = ("u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8")
_BYTE_ORDERS = ("|", "<", ">", "=")


def _text(value: object) -> str:
    """A pickled short string: str (Python 3) or bytes (Python 2 ``str`` under encoding='bytes')."""
    if isinstance(value, bytes):
        return value.decode("ascii")
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {type(value).__name__}")


class _NDArrayType:
    """Stands in for ``numpy.ndarray`` inside a pickle; only ever compared by identity."""


class _DTypeStub:
    """Records ``numpy.dtype(name, align, copy)`` and its pickled state; :meth:`resolve` checks, builds."""

    def __init__(self, name: object, align: object = False, copy: object = True) -> None:
        self.name, self.state = name, None

    def __setstate__(self, state: object) -> None:
        self.state = state

    def resolve(self) -> np.dtype:
        name = _text(getattr(self, "name", None))
        if name not in _INTEGER_DTYPES:
            raise ValueError(f"dtype {name!r} not allowed (expected an integer dtype)")
        state, order = getattr(self, "state", None), "|"
        if state is not None:
            if not isinstance(state, tuple) or len(state) < 2 or any(v is not None for v in state[2:5]):
                raise ValueError("malformed dtype state (expected a plain integer dtype)")
            order = _text(state[1])
        if order not in _BYTE_ORDERS:
            raise ValueError(f"dtype byte order {order!r} (expected one of {_BYTE_ORDERS})")
        dtype = np.dtype(name)
        return dtype.newbyteorder(order) if order in "<>" else dtype


class _ArrayStub:
    """Records an ndarray's pickled state ``(version, shape, dtype, is_fortran, raw bytes)``."""

    def __init__(self, state: object = None) -> None:
        self.state = state

    def __setstate__(self, state: object) -> None:
        self.state = state

    def resolve(self) -> np.ndarray:
        state = getattr(self, "state", None)
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise ValueError("malformed array state")
        shape, dtype, fortran, raw = state[-4:]
        if not (isinstance(shape, tuple) and all(type(d) is int and d >= 0 for d in shape)):
            raise ValueError(f"malformed array shape {shape!r}")
        if not isinstance(dtype, _DTypeStub) or not isinstance(fortran, (bool, int)):
            raise ValueError("malformed array state")
        if not isinstance(raw, (bytes, bytearray)):
            raise ValueError(f"array data is {type(raw).__name__} (expected bytes)")
        dtype_ = dtype.resolve()
        count = int(np.prod(shape, dtype=object))
        if len(raw) != count * dtype_.itemsize:
            raise ValueError(f"array data holds {len(raw)} bytes for shape {shape} of {dtype_}")
        flat = np.frombuffer(bytes(raw), dtype=dtype_, count=count)  # (count,)
        return flat.reshape(shape, order="F" if fortran else "C")


def _reconstruct(subtype: object, shape: object, typecode: object) -> _ArrayStub:
    """Stand-in for ``numpy.core.multiarray._reconstruct``: an empty array to be filled by its state."""
    if subtype is not _NDArrayType:
        raise ValueError("only plain numpy arrays are allowed")
    return _ArrayStub()


def _frombuffer(buffer: object, dtype: object, shape: object, order: object) -> _ArrayStub:
    """Stand-in for ``numpy.core.numeric._frombuffer`` (arrays at pickle protocol 5)."""
    return _ArrayStub((1, shape, dtype, _text(order) == "F", buffer))


def _scalar(dtype: object, data: object = None) -> int:
    """Stand-in for ``numpy.core.multiarray.scalar``: an integer numpy scalar, returned as a Python int."""
    if not isinstance(dtype, _DTypeStub) or not isinstance(data, (bytes, bytearray)):
        raise ValueError("malformed numpy scalar")
    dtype_ = dtype.resolve()
    if len(data) != dtype_.itemsize:
        raise ValueError(f"numpy scalar of {dtype_} holds {len(data)} bytes")
    return int(np.frombuffer(bytes(data), dtype=dtype_)[0])


def _latin1_encode(text: object, encoding: object = "latin1") -> bytes:
    """``_codecs.encode`` restricted to latin-1 text, the only use protocol-2 pickles of bytes make of it."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ValueError(f"_codecs.encode allowed only for latin-1 text, not {encoding!r}")
    return text.encode("latin-1")


def _allowed_globals() -> dict[tuple[str, str], object]:
    """The globals a CIFAR pickle may name, each mapped to a stand-in written here (never numpy's own)."""
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): _NDArrayType,
        ("numpy", "dtype"): _DTypeStub,
        ("_codecs", "encode"): _latin1_encode,  # Python 3 protocol-2 pickles spell bytes this way
    }
    for module in ("numpy.core", "numpy._core"):
        allowed[(f"{module}.multiarray", "_reconstruct")] = _reconstruct
        allowed[(f"{module}.multiarray", "scalar")] = _scalar
        allowed[(f"{module}.numeric", "_frombuffer")] = _frombuffer
    return allowed


_ALLOWED = _allowed_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` knows only the globals numpy arrays need; any other is a DataError.

    The allowed names resolve to stand-ins (:class:`_DTypeStub`, :class:`_ArrayStub`, ...) that only record
    their arguments and state; :meth:`load` then checks those and builds the arrays with ``np.frombuffer``.
    So no function of numpy (or anything else) is ever called on the pickle's raw values: numpy's own
    ``dtype.__setstate__`` crashes the interpreter on some malformed states (numpy 2.4.6, found by fuzzing).
    Plain containers (dict, list, bytes, int) need no global.
    """

    def __init__(self, file, *, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> object:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise DataError(
                f"{self._path}: pickle refers to disallowed global {module}.{name} "
                "(expected only numpy arrays, lists and ints)"
            )
        return found

    def load(self) -> object:
        """The unpickled object, with arrays that are values of a top-level dict built and checked."""
        obj = super().load()
        if isinstance(obj, dict):
            obj = {k: v.resolve() if isinstance(v, _ArrayStub) else v for k, v in obj.items()}
        return obj


def _check_labels(labels: np.ndarray, path: Path) -> None:
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= _NUM_CLASSES):
        bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
        raise DataError(f"{path}: label {bad} out of range (expected 0..{_NUM_CLASSES - 1})")


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None


def read_cifar_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch: ``(images uint8 (N, 3, 32, 32), labels int64 (N,))``."""
    path = Path(path)
    raw = _read_file(path)
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
    raw = _read_file(path)
    try:
        # Walk the opcodes first (pure Python, no allocation): a corrupt length field fails here as truncated
        # data, where the C unpickler would first try to allocate whatever size it claims.
        for _ in pickletools.genops(raw):
            pass
        batch = RestrictedUnpickler(io.BytesIO(raw), path=path).load()
    except DataError:
        raise
    except Exception as exc:  # a corrupt pickle can raise nearly anything (EOFError, ValueError, ...)
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
    bad = next((int(v) for v in labels if not 0 <= v < _NUM_CLASSES), None)  # once per file, not per step
    if bad is not None:
        raise DataError(f"{path}: label {bad} out of range (expected 0..{_NUM_CLASSES - 1})")
    labels_arr = np.array([int(v) for v in labels], dtype=np.int64)  # (N,)
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
