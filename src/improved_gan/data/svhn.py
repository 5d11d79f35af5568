"""Reader for SVHN (Netzer et al., 2011), cropped-digits format ``train_32x32.mat`` and ``test_32x32.mat``.

The paper's SVHN semi-supervised experiment (Section 6.3, 1000 labels) uses the 73,257 training and 26,032
test digits (the reference code ignores the ``extra`` set; so do we). Each file is a MATLAB v5 file read with
``scipy.io.loadmat``; key ``'X'`` holds uint8 images ``(32, 32, 3, N)`` and ``'y'`` labels ``(N, 1)`` in
1..10, where 10 stands for the digit 0 (label 0 is also accepted, for files already converted). We return
images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` int64 in 0..9.

The count is checked for consistency (images against labels), not against the published split sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
import torch

from improved_gan.errors import DataError

__all__ = ["SVHN_FILES", "load_svhn_folder", "read_svhn_mat"]

SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One ``*_32x32.mat`` file: ``(images uint8 (N, 3, 32, 32), labels int64 (N,))``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        mat = scipy.io.loadmat(path, variable_names=("X", "y"))
    except NotImplementedError:  # scipy's answer to MATLAB v7.3 (HDF5) files
        raise DataError(f"{path}: MATLAB v7.3 file (expected a v5 .mat file as SVHN publishes)") from None
    except Exception as exc:  # a corrupt .mat makes scipy raise ValueError, TypeError, OSError, ...
        raise DataError(f"{path}: not a readable .mat file ({type(exc).__name__}: {exc})") from None
    x, y = mat.get("X"), mat.get("y")
    if x is None or y is None:
        raise DataError(f"{path}: missing key {'X' if x is None else 'y'} (expected keys 'X' and 'y')")
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise DataError(
            f"{path}: 'X' is a {x.dtype} array {x.shape} (expected uint8 of shape (32, 32, 3, N))"
        )
    n = x.shape[3]
    if y.size != n or y.ndim != 2 or n == 0:
        raise DataError(f"{path}: 'y' has shape {y.shape} for {n} images (expected ({n}, 1) with N > 0)")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise DataError(f"{path}: 'y' has dtype {y.dtype} (expected integer labels 1..10)")
    labels = y.reshape(n)  # (N,)
    bad = labels[(labels < 0) | (labels > 10) | (labels != np.round(labels))]
    if bad.size:
        raise DataError(f"{path}: label {bad[0]} out of range (expected integers 1..10, 10 meaning digit 0)")
    labels = labels.astype(np.int64) % 10  # (N,)  10 -> 0
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))  # (32, 32, 3, N) -> (N, 3, 32, 32)
    return images, labels


def load_svhn_folder(folder: Path) -> dict[str, torch.Tensor]:
    """Read ``train_32x32.mat`` and ``test_32x32.mat`` from ``folder``."""
    folder = Path(folder)
    out = {}
    for split, name in SVHN_FILES.items():
        images, labels = read_svhn_mat(folder / name)
        out[f"{split}_images"] = torch.from_numpy(images)  # (N, 3, 32, 32) uint8
        out[f"{split}_labels"] = torch.from_numpy(labels)  # (N,) int64
    return out
