"""IDX reader: values read back exactly, both namings, .gz or raw, and a one-line DataError per corruption."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from data_files import IDX_NAMES, idx_bytes, write_bytes, write_idx_dataset
from improved_gan.data import DataError
from improved_gan.data.idx import find_idx_file, load_idx_folder, load_idx_split, read_bytes, read_idx


def _check_equal(loaded: dict, written: dict) -> None:
    for split in ("train", "test"):
        x, y = loaded[f"{split}_images"], loaded[f"{split}_labels"]
        assert x.dtype == torch.uint8 and y.dtype == torch.int64
        assert torch.equal(x, torch.from_numpy(written[f"{split}_images"]).unsqueeze(1))
        assert torch.equal(y, torch.from_numpy(written[f"{split}_labels"].astype(np.int64)))


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dot_naming", [False, True])
def test_reads_back_exactly(tmp_path, gz, dot_naming):
    written = write_idx_dataset(
        tmp_path, n_train=30, n_test=12, shape=(28, 28), seed=3, gz=gz, dot_naming=dot_naming
    )
    loaded = load_idx_folder(tmp_path)
    _check_equal(loaded, written)
    assert loaded["train_images"].shape == (30, 1, 28, 28)
    assert loaded["test_images"].shape == (12, 1, 28, 28)


def test_other_image_size(tmp_path):
    written = write_idx_dataset(tmp_path, n_train=7, n_test=5, shape=(8, 6), seed=1)
    loaded = load_idx_folder(tmp_path)
    _check_equal(loaded, written)
    assert loaded["train_images"].shape == (7, 1, 8, 6)


def test_header_layout_is_big_endian(tmp_path):
    # Hand-written file: magic 0x00000803, sizes 2, 3, 1, then six bytes in row-major order.
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(
        b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x01" + bytes(range(6))
    )
    np.testing.assert_array_equal(read_idx(path, ndim=3), np.arange(6, dtype=np.uint8).reshape(2, 3, 1))


def test_find_prefers_raw_then_gz_and_both_namings(tmp_path):
    assert find_idx_file(tmp_path, "train", "images") is None
    write_bytes(tmp_path / "train-images.idx3-ubyte.gz", idx_bytes(np.zeros((1, 2, 2))), gz=True)
    assert find_idx_file(tmp_path, "train", "images") == tmp_path / "train-images.idx3-ubyte.gz"
    write_bytes(tmp_path / "train-images-idx3-ubyte", idx_bytes(np.zeros((1, 2, 2))), gz=False)
    assert find_idx_file(tmp_path, "train", "images") == tmp_path / "train-images-idx3-ubyte"
    assert find_idx_file(tmp_path, "test", "labels") is None


def test_gzip_content_without_gz_name_is_read(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 2, 2)
    path = write_bytes(tmp_path / "train-images-idx3-ubyte", idx_bytes(array), gz=True)
    np.testing.assert_array_equal(read_idx(path, ndim=3), array)


def _error(call) -> str:
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_file_names_it(tmp_path):
    write_idx_dataset(tmp_path, n_train=10, n_test=10)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    message = _error(lambda: load_idx_folder(tmp_path))
    assert "t10k-labels-idx1-ubyte" in message and str(tmp_path) in message


def test_missing_path(tmp_path):
    message = _error(lambda: read_idx(tmp_path / "nope-idx3-ubyte", ndim=3))
    assert "nope-idx3-ubyte" in message and "not found" in message


@pytest.mark.parametrize("keep", [0, 3, 7, 15, 16 + 11])
def test_truncated_file(tmp_path, keep):
    data = idx_bytes(np.ones((2, 4, 4), dtype=np.uint8))  # 16-byte header + 32 bytes
    path = write_bytes(tmp_path / "train-images-idx3-ubyte", data[:keep], gz=False)
    message = _error(lambda: read_idx(path, ndim=3))
    assert str(path) in message and "truncated" in message


def test_trailing_bytes(tmp_path):
    path = write_bytes(tmp_path / "a-idx1-ubyte", idx_bytes(np.ones(4, dtype=np.uint8)) + b"\x00", gz=False)
    assert "trailing" in _error(lambda: read_idx(path, ndim=1))


def test_wrong_magic_number(tmp_path):
    labels_file = write_bytes(tmp_path / "l-idx1-ubyte", idx_bytes(np.ones(4, dtype=np.uint8)), gz=False)
    message = _error(lambda: read_idx(labels_file, ndim=3))  # a labels file where images are expected
    assert "magic" in message and "0x00000801" in message and "0x00000803" in message
    float_file = tmp_path / "f-idx1-ubyte"  # element type 0x0D (float) is valid IDX but not ours
    float_file.write_bytes(b"\x00\x00\x0d\x01" + struct.pack(">I", 1) + b"\x00" * 4)
    assert "magic" in _error(lambda: read_idx(float_file, ndim=1))


def test_empty_file_and_zero_examples(tmp_path):
    empty = tmp_path / "e-idx1-ubyte"
    empty.write_bytes(b"")
    assert "truncated" in _error(lambda: read_idx(empty, ndim=1))
    none = write_bytes(tmp_path / "z-idx1-ubyte", idx_bytes(np.zeros(0, dtype=np.uint8)), gz=False)
    assert "no examples" in _error(lambda: read_idx(none, ndim=1))


def test_mismatched_counts(tmp_path):
    write_idx_dataset(tmp_path, n_train=10, n_test=10)
    write_bytes(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(np.zeros(9, dtype=np.uint8)), gz=True)
    message = _error(lambda: load_idx_split(tmp_path, "train"))
    assert "train-labels-idx1-ubyte.gz" in message and "9 labels" in message and "10 images" in message


def test_label_out_of_range(tmp_path):
    write_idx_dataset(tmp_path, n_train=10, n_test=10)
    labels = np.zeros(10, dtype=np.uint8)
    labels[4] = 10
    write_bytes(tmp_path / "t10k-labels-idx1-ubyte.gz", idx_bytes(labels), gz=True)
    message = _error(lambda: load_idx_folder(tmp_path))
    assert "t10k-labels-idx1-ubyte.gz" in message and "label 10" in message and "0..9" in message


def test_gz_name_on_plain_file(tmp_path):
    path = write_bytes(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(np.zeros((1, 2, 2))), gz=False)
    message = _error(lambda: read_bytes(path))
    assert str(path) in message and "not a gzip file" in message


@pytest.mark.parametrize("cut", [10, -9, -3])
def test_corrupt_gzip(tmp_path, cut):
    data = gzip.compress(idx_bytes(np.arange(64, dtype=np.uint8).reshape(1, 8, 8)))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(data[:cut])
    assert "gzip" in _error(lambda: read_idx(path, ndim=3))


def test_split_image_sizes_must_agree(tmp_path):
    write_idx_dataset(tmp_path, n_train=10, n_test=10, shape=(28, 28))
    write_bytes(
        tmp_path / "t10k-images-idx3-ubyte.gz", idx_bytes(np.zeros((10, 8, 8), dtype=np.uint8)), gz=True
    )
    assert "t10k-images" in _error(lambda: load_idx_folder(tmp_path))


def test_folder_is_a_directory_not_file(tmp_path):
    (tmp_path / IDX_NAMES[("train", "images")]).mkdir()
    # a directory with the file's name is not a file: reported as missing
    assert "train-images" in _error(lambda: load_idx_split(tmp_path, "train"))
