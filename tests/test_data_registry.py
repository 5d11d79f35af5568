"""Registry: location rules, sub-folders, preprocessing per recipe, and the real Fashion-MNIST when installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from data_files import write_cifar_bin_dataset, write_cifar_py_dataset, write_idx_dataset, write_svhn_dataset
from improved_gan.data import DataError, ImageDataset, load_dataset, normalize, registry, to_unit
from improved_gan.errors import ConfigError, UserError

SYSTEM_FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("IMPROVED_GAN_DATA", raising=False)


@pytest.fixture
def no_system(monkeypatch, tmp_path):
    """Point the system location at a folder that does not exist."""
    monkeypatch.setitem(registry.SYSTEM_LOCATIONS, "fashion-mnist", tmp_path / "not-installed")
    return tmp_path / "not-installed"


def _error(call) -> str:
    with pytest.raises(DataError) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


def test_data_dir_with_files_directly(tmp_path):
    written = write_idx_dataset(tmp_path, n_train=20, n_test=10, seed=1)
    ds = load_dataset("fashion-mnist", tmp_path)
    assert isinstance(ds, ImageDataset) and ds.name == "fashion-mnist" and ds.num_classes == 10
    assert ds.source == tmp_path and ds.image_shape == (1, 28, 28)
    assert torch.equal(ds.train_images, torch.from_numpy(written["train_images"]).unsqueeze(1))
    assert torch.equal(ds.test_labels, torch.from_numpy(written["test_labels"].astype(np.int64)))


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
def test_data_dir_with_subfolder(tmp_path, name):
    write_idx_dataset(tmp_path / name, n_train=10, n_test=10, gz=False)
    ds = load_dataset(name, str(tmp_path))
    assert ds.source == tmp_path / name and ds.name == name


def test_env_var_and_precedence(tmp_path, monkeypatch):
    env_dir, arg_dir = tmp_path / "env", tmp_path / "arg"
    write_idx_dataset(env_dir / "mnist", n_train=10, n_test=10, seed=1)
    write_idx_dataset(arg_dir, n_train=20, n_test=10, seed=2)
    monkeypatch.setenv("IMPROVED_GAN_DATA", str(env_dir))
    assert load_dataset("mnist").source == env_dir / "mnist"
    assert load_dataset("mnist", arg_dir).source == arg_dir


def test_system_location_used_last(tmp_path, monkeypatch):
    write_idx_dataset(tmp_path / "system", n_train=10, n_test=10)
    monkeypatch.setitem(registry.SYSTEM_LOCATIONS, "fashion-mnist", tmp_path / "system")
    monkeypatch.setitem(registry.STANDARD_SPLITS, "fashion-mnist", (10, 10))
    assert load_dataset("fashion-mnist").source == tmp_path / "system"


def test_system_location_checks_published_split_sizes(tmp_path, monkeypatch):
    write_idx_dataset(tmp_path / "system", n_train=10, n_test=10)
    monkeypatch.setitem(registry.SYSTEM_LOCATIONS, "fashion-mnist", tmp_path / "system")
    message = _error(lambda: load_dataset("fashion-mnist"))
    assert "10/10" in message and "60000/10000" in message


def test_missing_system_package_says_how_to_install(no_system):
    message = _error(lambda: load_dataset("fashion-mnist"))
    assert str(no_system) in message
    assert "apt-get install dataset-fashion-mnist" in message and "--data-dir" in message
    assert "IMPROVED_GAN_DATA" in message
    no_system.mkdir()  # folder present but empty
    assert "apt-get install dataset-fashion-mnist" in _error(lambda: load_dataset("fashion-mnist"))


@pytest.mark.parametrize("name", ["mnist", "cifar10", "svhn"])
def test_no_location_for_user_supplied_sets(name):
    message = _error(lambda: load_dataset(name))
    assert "--data-dir" in message and "IMPROVED_GAN_DATA" in message and name in message


def test_missing_data_dir_and_empty_data_dir(tmp_path):
    message = _error(lambda: load_dataset("mnist", tmp_path / "absent"))
    assert str(tmp_path / "absent") in message and "does not exist" in message
    message = _error(lambda: load_dataset("cifar10", tmp_path))
    assert "cifar-10-batches-bin/" in message and "data_batch_1.bin" in message


def test_partial_folder_names_missing_file(tmp_path):
    write_idx_dataset(tmp_path, n_train=10, n_test=10)
    (tmp_path / "train-images-idx3-ubyte.gz").unlink()
    assert "train-images-idx3-ubyte" in _error(lambda: load_dataset("mnist", tmp_path))


@pytest.mark.parametrize("version", ["bin", "py"])
def test_cifar10_subfolders(tmp_path, version):
    writer = write_cifar_bin_dataset if version == "bin" else write_cifar_py_dataset
    written = writer(tmp_path / f"cifar-10-batches-{version}", n_per_batch=2, seed=3)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.source == tmp_path / f"cifar-10-batches-{version}" and ds.image_shape == (3, 32, 32)
    assert torch.equal(ds.train_images, torch.from_numpy(written["train_images"]))


def test_svhn_subfolder(tmp_path):
    written = write_svhn_dataset(tmp_path / "svhn", n_train=10, n_test=10)
    ds = load_dataset("svhn", tmp_path)
    assert torch.equal(ds.test_labels, torch.from_numpy(written["test_labels"]))


def test_unknown_and_toy_names():
    with pytest.raises(ConfigError, match="cifar100"):
        load_dataset("cifar100")
    with pytest.raises(ConfigError, match="load_toy"):
        load_dataset("ring8")
    assert issubclass(DataError, UserError)


def _dataset(name: str, c: int) -> ImageDataset:
    x = torch.arange(256, dtype=torch.uint8).reshape(4, 1, 8, 8).expand(4, c, 8, 8).contiguous()
    y = torch.zeros(4, dtype=torch.int64)
    return ImageDataset(name, x, y, x, y, 10, Path("."))


@pytest.mark.parametrize(
    ("name", "c", "formula"),
    [
        ("fashion-mnist", 1, lambda v: v / 255.0),
        ("mnist", 1, lambda v: v / 255.0),
        ("cifar10", 3, lambda v: (v - 127.5) / 128.0),
        ("svhn", 3, lambda v: (v - 127.5) / 127.5),
    ],
)
def test_normalize_and_to_unit(name, c, formula):
    ds = _dataset(name, c)
    x = ds.train_images
    values = np.arange(256, dtype=np.float64)
    expected = torch.from_numpy(formula(values)).to(torch.float32)[x.long()]
    y = ds.normalize(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-7)
    torch.testing.assert_close(ds.to_unit(y), x.float() / 255.0, rtol=0, atol=1e-6)
    assert ds.to_unit(torch.full((2,), 5.0)).tolist() == [1.0, 1.0]
    assert ds.to_unit(torch.full((2,), -5.0)).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="uint8"):
        ds.normalize(x.float())
    # the module-level functions (used where only the data set's name is known) agree with the methods
    assert torch.equal(normalize(name, x), y) and torch.equal(to_unit(name, y), ds.to_unit(y))
    with pytest.raises(ConfigError):
        to_unit("ring8", y)


def test_image_dataset_checks_its_fields():
    x = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    y = torch.zeros(2, dtype=torch.int64)
    with pytest.raises(ValueError):
        ImageDataset("mnist", x.float(), y, x, y, 10, Path("."))
    with pytest.raises(ValueError):
        ImageDataset("mnist", x, y[:1], x, y, 10, Path("."))
    with pytest.raises(ValueError):
        ImageDataset("mnist", x, y, torch.zeros(2, 1, 5, 5, dtype=torch.uint8), y, 10, Path("."))
    with pytest.raises(ValueError):
        ImageDataset("imagenet", x, y, x, y, 10, Path("."))


@pytest.mark.skipif(not SYSTEM_FMNIST.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist():
    ds = load_dataset("fashion-mnist")
    assert ds.source == SYSTEM_FMNIST
    assert ds.train_images.shape == (60_000, 1, 28, 28) and ds.test_images.shape == (10_000, 1, 28, 28)
    assert ds.train_images.dtype == torch.uint8 and ds.train_labels.dtype == torch.int64
    assert torch.equal(torch.bincount(ds.train_labels, minlength=10), torch.full((10,), 6_000))
    assert torch.equal(torch.bincount(ds.test_labels, minlength=10), torch.full((10,), 1_000))
    assert int(ds.train_images.max()) == 255 and int(ds.train_images.min()) == 0
