"""SVHN reader: (32, 32, 3, N) -> (N, 3, 32, 32), label 10 -> digit 0, and a DataError per malformed file."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import torch

from data_files import write_svhn_dataset, write_svhn_mat
from improved_gan.data import DataError
from improved_gan.data.svhn import load_svhn_folder, read_svhn_mat


def _error(call) -> str:
    with pytest.raises(DataError) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


def test_reads_back_exactly(tmp_path):
    written = write_svhn_dataset(tmp_path, n_train=12, n_test=7, seed=4)
    loaded = load_svhn_folder(tmp_path)
    for key, value in written.items():
        assert torch.equal(loaded[key], torch.from_numpy(value)), key
    assert loaded["train_labels"].dtype == torch.int64 and loaded["train_images"].dtype == torch.uint8
    assert loaded["test_images"].shape == (7, 3, 32, 32)


def test_axis_order_and_label_ten(tmp_path):
    # X[row, col, channel, n] = 100 * n + 10 * channel + (row == col); y = 10 means digit 0.
    x = np.zeros((32, 32, 3, 2), dtype=np.uint8)
    for n in range(2):
        for c in range(3):
            x[:, :, c, n] = 100 * n + 10 * c + np.eye(32, dtype=np.uint8)
    x[0, 31, 1, 1] = 255  # row 0, column 31, green, example 1
    path = tmp_path / "train_32x32.mat"
    scipy.io.savemat(path, {"X": x, "y": np.array([[10], [3]], dtype=np.uint8)})
    images, labels = read_svhn_mat(path)
    assert labels.tolist() == [0, 3]
    assert images.shape == (2, 3, 32, 32)
    assert images[1, 1, 0, 31] == 255
    for n in range(2):
        for c in range(3):
            expected = 100 * n + 10 * c + np.eye(32, dtype=np.uint8)
            if (n, c) == (1, 1):
                expected[0, 31] = 255
            np.testing.assert_array_equal(images[n, c], expected)


def test_already_converted_zero_labels_accepted(tmp_path):
    path = tmp_path / "test_32x32.mat"
    write_svhn_mat(path, np.zeros((3, 3, 32, 32), dtype=np.uint8), np.array([0, 5, 10]))
    assert read_svhn_mat(path)[1].tolist() == [0, 5, 0]


def test_missing_file(tmp_path):
    write_svhn_dataset(tmp_path)
    (tmp_path / "test_32x32.mat").unlink()
    message = _error(lambda: load_svhn_folder(tmp_path))
    assert "test_32x32.mat" in message and "not found" in message


def test_missing_keys(tmp_path):
    path = tmp_path / "train_32x32.mat"
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 2), dtype=np.uint8)})
    message = _error(lambda: read_svhn_mat(path))
    assert str(path) in message and "'y'" in message
    scipy.io.savemat(path, {"images": np.zeros((32, 32, 3, 2), dtype=np.uint8), "y": np.ones((2, 1))})
    assert "'X'" in _error(lambda: read_svhn_mat(path))


def test_wrong_shapes_and_types(tmp_path):
    path = tmp_path / "train_32x32.mat"
    scipy.io.savemat(path, {"X": np.zeros((2, 3, 32, 32), dtype=np.uint8), "y": np.ones((2, 1))})
    assert "(32, 32, 3, N)" in _error(lambda: read_svhn_mat(path))
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 2), dtype=np.float64), "y": np.ones((2, 1))})
    assert "uint8" in _error(lambda: read_svhn_mat(path))
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 2), dtype=np.uint8), "y": np.ones((3, 1))})
    assert "for 2 images" in _error(lambda: read_svhn_mat(path))


@pytest.mark.parametrize("bad", [11, 2.5, -1])
def test_label_out_of_range(tmp_path, bad):
    path = tmp_path / "train_32x32.mat"
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 2), dtype=np.uint8), "y": np.array([[1.0], [bad]])})
    message = _error(lambda: read_svhn_mat(path))
    assert "out of range" in message and str(path) in message


def test_not_a_mat_file(tmp_path):
    path = tmp_path / "train_32x32.mat"
    path.write_bytes(b"\x00\x01garbage" * 20)
    assert "not a readable .mat" in _error(lambda: read_svhn_mat(path))


def test_truncated_mat_file(tmp_path):
    path = tmp_path / "train_32x32.mat"
    write_svhn_mat(path, np.zeros((4, 3, 32, 32), dtype=np.uint8), np.array([1, 2, 3, 4]))
    path.write_bytes(path.read_bytes()[:5000])
    assert str(path) in _error(lambda: read_svhn_mat(path))


def test_matlab_v73_file(tmp_path):
    # 116-byte text, 8-byte subsystem offset, version 0x0200 (v7.3, HDF5) and endian mark 'IM'.
    path = tmp_path / "train_32x32.mat"
    path.write_bytes(b"MATLAB 7.3 MAT-file".ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM" + b"\x00" * 512)
    assert "v7.3" in _error(lambda: read_svhn_mat(path))
