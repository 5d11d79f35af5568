"""Property: a corrupted IDX or CIFAR-10 file gives either correct data or a DataError, never another exception.

Corruptions (truncation, byte flips, insertions, deletions; up to three, biased to the header and the end) are
applied to small valid files. When the reader succeeds, its output must be what the corrupted bytes say.
"""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_files import cifar_bin_bytes, cifar_py_bytes, idx_bytes, write_idx_dataset
from improved_gan.data import DataError
from improved_gan.data.cifar import read_cifar_bin, read_cifar_py
from improved_gan.data.idx import load_idx_folder, read_idx

FUZZ = settings(derandomize=True, max_examples=200, deadline=None, database=None)

_rng = np.random.default_rng(0)
IDX_IMAGES = idx_bytes(_rng.integers(0, 256, size=(3, 4, 4), dtype=np.uint8))
CIFAR_IMAGES = _rng.integers(0, 256, size=(2, 3, 32, 32), dtype=np.uint8)
CIFAR_BIN = cifar_bin_bytes(CIFAR_IMAGES, np.array([3, 9]))
CIFAR_PY = {
    "protocol4": cifar_py_bytes(CIFAR_IMAGES, [3, 9], protocol=4),
    "python2": cifar_py_bytes(CIFAR_IMAGES, [3, 9], python2=True),
}


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    """One folder for the whole module (hypothesis reuses it across examples)."""
    return tmp_path_factory.mktemp("fuzz")


def _position(size_hint: int) -> st.SearchStrategy[int]:
    """Positions near the start (headers), anywhere, or near the end (pickle tails)."""
    return st.one_of(
        st.integers(0, 80), st.integers(0, size_hint), st.integers(-80, -1).map(lambda i: size_hint + i)
    )


@st.composite
def corruptions(draw, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
        at = draw(_position(len(data))) % (len(out) + 1)
        if kind == "truncate":
            del out[at:]
        elif kind == "flip" and at < len(out):
            out[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del out[at : at + draw(st.integers(1, 8))]
    return bytes(out)


def _expect_idx(data: bytes, ndim: int) -> np.ndarray:
    """Independent parse of an unsigned-byte IDX payload (called only after the reader accepted it)."""
    assert data[:4] == bytes([0, 0, 8, ndim])
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data[4 + 4 * ndim :], dtype=np.uint8).reshape(shape)


@FUZZ
@given(data=corruptions(IDX_IMAGES), gz=st.booleans())
def test_idx_file(fuzz_dir, data, gz):
    path = fuzz_dir / ("x-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    try:
        got = read_idx(path, ndim=3)
    except DataError:
        return
    np.testing.assert_array_equal(got, _expect_idx(data, 3))


@FUZZ
@given(data=st.data(), which=st.sampled_from(["train-images", "train-labels", "t10k-images", "t10k-labels"]))
def test_idx_folder(fuzz_dir, data, which):
    folder = fuzz_dir / "idx-folder"
    write_idx_dataset(folder, n_train=6, n_test=4, shape=(3, 3), gz=False)
    path = next(folder.glob(f"{which}-*"))
    corrupted = data.draw(corruptions(path.read_bytes()))
    path.write_bytes(corrupted)
    try:
        got = load_idx_folder(folder)
    except DataError:
        return
    ndim = 3 if "images" in which else 1
    key = ("train_" if which.startswith("train") else "test_") + ("images" if ndim == 3 else "labels")
    expected = _expect_idx(corrupted, ndim)
    np.testing.assert_array_equal(got[key].numpy().reshape(expected.shape), expected)
    assert got["train_images"].shape[0] == got["train_labels"].shape[0]
    assert got["test_images"].shape[0] == got["test_labels"].shape[0]
    assert int(got["train_labels"].max()) < 10 and int(got["test_labels"].max()) < 10


@FUZZ
@given(data=corruptions(CIFAR_BIN))
def test_cifar_bin(fuzz_dir, data):
    path = fuzz_dir / "data_batch_1.bin"
    path.write_bytes(data)
    try:
        images, labels = read_cifar_bin(path)
    except DataError:
        return
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3073)
    np.testing.assert_array_equal(labels, records[:, 0].astype(np.int64))
    np.testing.assert_array_equal(images.reshape(-1, 3072), records[:, 1:])
    assert labels.max() < 10


@pytest.mark.parametrize("variant", sorted(CIFAR_PY))
def test_cifar_py(fuzz_dir, variant):
    @FUZZ
    @given(data=corruptions(CIFAR_PY[variant]))
    def check(data):
        path = fuzz_dir / "data_batch_1"
        path.write_bytes(data)
        try:
            images, labels = read_cifar_py(path)
        except DataError:
            return
        assert images.dtype == np.uint8 and images.ndim == 4 and images.shape[1:] == (3, 32, 32)
        assert labels.dtype == np.int64 and labels.shape == images.shape[:1]
        assert labels.min() >= 0 and labels.max() < 10

    check()
