"""One data-set naming everywhere: the aliases users type are accepted by every entry point that takes a
data-set name, and an unknown name is rejected with the list of accepted names."""

from __future__ import annotations

import pytest
import torch

from data_files import write_idx_dataset
from improved_gan import ConfigError, UserError, default_metrics, load_dataset
from improved_gan.cli import main
from improved_gan.data import canonical_dataset_name, is_toy, normalize, resolve_data_folder, to_unit
from improved_gan.metrics import compute_metrics, default_num_samples
from improved_gan.training.config import override
from improved_gan.training.presets import get_preset

FASHION = ["fashion-mnist", "fmnist", "fashion_mnist", "fashionmnist", "Fashion-MNIST", "FMNIST"]


@pytest.fixture(scope="module")
def tiny_fmnist(tmp_path_factory):
    d = tmp_path_factory.mktemp("fm")
    write_idx_dataset(d, n_train=20, n_test=10, seed=1)
    return d


@pytest.mark.parametrize("name", FASHION)
def test_every_entry_point_accepts_the_fashion_mnist_aliases(name, tiny_fmnist):
    assert canonical_dataset_name(name) == "fashion-mnist"
    data = load_dataset(name, data_dir=tiny_fmnist)
    assert data.name == "fashion-mnist" and data.train_images.shape == (20, 1, 28, 28)
    assert resolve_data_folder(name, tiny_fmnist)[0] == tiny_fmnist
    x = torch.tensor([0, 51, 255], dtype=torch.uint8)
    torch.testing.assert_close(normalize(name, x), torch.tensor([0.0, 0.2, 1.0]))  # x / 255
    torch.testing.assert_close(to_unit(name, torch.tensor([0.2])), torch.tensor([0.2]))
    assert default_metrics(name) == ("classifier_score", "classifier_fid", "classifier_kid", "classifier_pr")
    assert default_num_samples(name) == 10_000
    assert not is_toy(name)
    cfg = override(get_preset("fmnist-ssl"), [f"data.dataset={name}"])
    assert cfg.data.dataset == "fashion-mnist"  # stored canonically: later code compares names


def test_image_dataset_stores_the_canonical_name():
    x, y = torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64)
    from improved_gan import ImageDataset

    assert ImageDataset("fmnist", x, y, x, y, 10, ".").name == "fashion-mnist"


def test_toy_names_and_compute_metrics_with_an_alias_of_case():
    assert is_toy("Ring8")
    points = torch.tensor([[2.0, 0.0]] * 4)  # all on mode 0 of the ring
    assert compute_metrics(["modes"], points, dataset="RING8") == {"modes": 1}


@pytest.mark.parametrize("call", ["load_dataset", "default_metrics", "canonical", "config"])
def test_unknown_names_list_the_accepted_ones(call):
    fn = {
        "load_dataset": lambda: load_dataset("kmnist"),
        "default_metrics": lambda: default_metrics("kmnist"),
        "canonical": lambda: canonical_dataset_name("kmnist"),
        "config": lambda: override(get_preset("fmnist-ssl"), ["data.dataset=kmnist"]),
    }[call]
    with pytest.raises(UserError) as info:
        fn()
    message = str(info.value)
    for accepted in ("fashion-mnist", "mnist", "cifar10", "svhn", "ring8", "fmnist", "fashion_mnist"):
        assert accepted in message, message


def test_config_error_names_the_key():
    with pytest.raises(ConfigError, match=r"^data\.dataset: unknown data set 'kmnist'"):
        override(get_preset("fmnist-ssl"), ["data.dataset=kmnist"])


def test_train_cli_with_an_alias(capsys):
    assert main(["train", "fmnist-ssl", "--set", "data.dataset=nope", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: data.dataset: unknown data set 'nope'") and "\n" not in err
