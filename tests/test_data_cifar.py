"""CIFAR-10 readers: binary records and pickles (through the restricted unpickler) read back exactly."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest
import torch

from data_files import cifar_bin_bytes, cifar_py_bytes, write_cifar_bin_dataset, write_cifar_py_dataset
from improved_gan.data import DataError
from improved_gan.data.cifar import RestrictedUnpickler, load_cifar_folder, read_cifar_bin, read_cifar_py


def _check_equal(loaded: dict, written: dict) -> None:
    for key, value in written.items():
        expected = torch.from_numpy(value.astype(np.int64) if "labels" in key else value)
        assert loaded[key].dtype == expected.dtype
        assert torch.equal(loaded[key], expected), key


def _error(call) -> str:
    with pytest.raises(DataError) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


def test_bin_reads_back_exactly(tmp_path):
    written = write_cifar_bin_dataset(tmp_path, n_per_batch=4, seed=2)
    loaded = load_cifar_folder(tmp_path)
    _check_equal(loaded, written)
    assert loaded["train_images"].shape == (20, 3, 32, 32) and loaded["test_images"].shape == (4, 3, 32, 32)


def test_bin_record_layout(tmp_path):
    # One hand-made record: label 7, red plane all 1, green all 2, blue all 3.
    path = tmp_path / "test_batch.bin"
    path.write_bytes(bytes([7]) + bytes([1]) * 1024 + bytes([2]) * 1024 + bytes([3]) * 1024)
    images, labels = read_cifar_bin(path)
    assert labels.tolist() == [7] and labels.dtype == np.int64
    for c in range(3):
        assert (images[0, c] == c + 1).all()


@pytest.mark.parametrize(("protocol", "python2"), [(2, True), (2, False), (4, False), (5, False)])
def test_py_reads_back_exactly(tmp_path, protocol, python2):
    written = write_cifar_py_dataset(tmp_path, n_per_batch=3, seed=5, protocol=protocol, python2=python2)
    _check_equal(load_cifar_folder(tmp_path), written)


def test_bin_preferred_when_both_versions_present(tmp_path):
    written = write_cifar_bin_dataset(tmp_path, n_per_batch=2, seed=0)
    write_cifar_py_dataset(tmp_path, n_per_batch=3, seed=1)
    _check_equal(load_cifar_folder(tmp_path), written)


def test_py_accepts_str_keys_and_numpy_int_labels(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(3, 3072), dtype=np.uint8)
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({"data": data, "labels": [np.int64(1), np.int64(9), np.int64(0)]}))
    images, labels = read_cifar_py(path)
    np.testing.assert_array_equal(images.reshape(3, 3072), data)
    assert labels.tolist() == [1, 9, 0]


def test_missing_batch_file(tmp_path):
    write_cifar_bin_dataset(tmp_path, n_per_batch=2)
    (tmp_path / "data_batch_3.bin").unlink()
    message = _error(lambda: load_cifar_folder(tmp_path))
    assert "data_batch_3.bin" in message and "not found" in message


@pytest.mark.parametrize("size", [0, 3072, 3074, 2 * 3073 - 1])
def test_bin_truncated(tmp_path, size):
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(b"\x01" * size)
    message = _error(lambda: read_cifar_bin(path))
    assert str(path) in message and "3073" in message


def test_bin_label_out_of_range(tmp_path):
    path = tmp_path / "data_batch_1.bin"
    images = np.zeros((2, 3, 32, 32), dtype=np.uint8)
    path.write_bytes(cifar_bin_bytes(images, np.array([3, 10])))
    message = _error(lambda: read_cifar_bin(path))
    assert "label 10" in message and str(path) in message


def test_disallowed_global_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Exploit(), b"labels": []}))
    message = _error(lambda: read_cifar_py(path))
    assert str(path) in message and "disallowed global" in message and "mkdir" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    "module_name",
    [("builtins", "eval"), ("numpy", "load"), ("numpy.core.multiarray", "fromfile"), ("_codecs", "decode")],
)
def test_restricted_unpickler_allowlist(tmp_path, module_name):
    module, name = module_name
    payload = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"."
    with pytest.raises(DataError, match="disallowed global"):
        RestrictedUnpickler(io.BytesIO(payload), path=tmp_path / "p").load()


def test_codecs_encode_only_for_latin1(tmp_path):
    # protocol 2, _codecs.encode('abc', 'rot13'): refused although the global itself is allowed
    payload = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R."
    path = tmp_path / "data_batch_1"
    path.write_bytes(payload)
    assert "latin-1" in _error(lambda: read_cifar_py(path))


def _write_py(tmp_path, obj) -> str:
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps(obj))
    return _error(lambda: read_cifar_py(path))


def test_py_structure_checks(tmp_path):
    good = np.zeros((2, 3072), dtype=np.uint8)
    assert "expected a dict" in _write_py(tmp_path, [good, [0, 1]])
    assert "b'data'" in _write_py(tmp_path, {b"labels": [0, 1]})
    assert "dtype 'f4'" in _write_py(tmp_path, {b"data": good.astype(np.float32), b"labels": [0, 1]})
    assert "b'data'" in _write_py(tmp_path, {b"data": good.astype(np.int8), b"labels": [0, 1]})
    assert "b'data'" in _write_py(tmp_path, {b"data": good.reshape(2, 3, 1024), b"labels": [0, 1]})
    assert "b'labels'" in _write_py(tmp_path, {b"data": good, b"labels": np.array([0, 1])})
    assert "b'labels'" in _write_py(tmp_path, {b"data": good, b"labels": [0, "1"]})
    assert "2 images" in _write_py(tmp_path, {b"data": good, b"labels": [0, 1, 2]})
    assert "label 10" in _write_py(tmp_path, {b"data": good, b"labels": [0, 10]})
    assert "label -1" in _write_py(tmp_path, {b"data": good, b"labels": [-1, 0]})
    assert f"label {2**70}" in _write_py(tmp_path, {b"data": good, b"labels": [0, 2**70]})


def test_py_truncated_and_garbage(tmp_path):
    data = cifar_py_bytes(np.zeros((2, 3, 32, 32), dtype=np.uint8), [0, 1])
    path = tmp_path / "test_batch"
    path.write_bytes(data[: len(data) // 2])
    assert str(path) in _error(lambda: read_cifar_py(path))
    path.write_bytes(b"not a pickle at all")
    assert "CIFAR-10 pickle" in _error(lambda: read_cifar_py(path))


def test_malformed_dtype_state_is_an_error_not_a_crash(tmp_path):
    # Found by fuzzing: a dtype state tuple missing items ((3, 'N', None, -1, -1, 0) here) crashes the
    # interpreter inside numpy's own dtype.__setstate__; the reader must never hand such state to numpy.
    data = cifar_py_bytes(np.zeros((2, 3, 32, 32), dtype=np.uint8), [0, 1], python2=True)
    at = data.index(b"U\x01|") + 2  # SHORT_BINSTRING '|' (the byte order), then BINPUT, NONE
    path = tmp_path / "data_batch_1"
    path.write_bytes(data[:at] + data[at + 4 :])
    assert "dtype" in _error(lambda: read_cifar_py(path))
