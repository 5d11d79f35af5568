"""Presets: the paper's recipes, and ablation variants that differ from their base in exactly the listed fields."""

import pytest

from improved_gan.errors import ConfigError
from improved_gan.training.config import Config, diff_fields
from improved_gan.training.presets import PRESETS, VARIANTS, get_preset, preset_names, variants_of

EXPECTED_VARIANT_FIELDS = {
    "-vbn+bn": {"model.generator_norm"},
    "-l": {"data.labels_per_class", "loss.use_labels"},
    "-l+ha": {"data.labels_per_class", "loss.use_labels", "loss.historical_averaging"},
    "-ls": {"loss.real_target"},
    "-mbf": {"model.minibatch_kernels"},
    "+fm": {"loss.generator"},
    "+ha": {"loss.historical_averaging"},
}


def test_contract_preset_names_exist():
    names = set(preset_names())
    for name in (
        "fmnist-ssl",
        "mnist-ssl",
        "cifar10-ssl",
        "svhn-ssl",
        "ring8-gan",
        "grid25-gan",
        "fmnist-gan",
        "cifar10-gan",
        "fmnist-classifier",
        "mnist-classifier",
    ):
        assert name in names


@pytest.mark.parametrize("base", ["fmnist-gan", "cifar10-gan", "ring8-gan", "grid25-gan"])
def test_each_variant_changes_exactly_its_fields(base):
    assert variants_of(base)
    for suffix in variants_of(base):
        changed = diff_fields(get_preset(base), get_preset(base + suffix))
        assert changed == EXPECTED_VARIANT_FIELDS[suffix], (base, suffix)
        assert VARIANTS[suffix][1] == EXPECTED_VARIANT_FIELDS[suffix]


def test_paper_recipes():
    # SPEC §6 and the reference scripts: MNIST lr 0.003, beta1 0.5, batch 100, 300 x 600 steps, 100 labels.
    m = get_preset("mnist-ssl")
    assert (m.optim.lr, m.optim.beta1, m.data.batch_size, m.train.steps) == (0.003, 0.5, 100, 300 * 600)
    assert m.data.labels_per_class * 10 == 100 and m.loss.unsupervised_weight == 0.5
    assert m.train.ema_decay == 0.9999 and m.loss.feature_distance == "mse"
    # fmnist-ssl is the same recipe on another data set
    assert diff_fields(m, get_preset("fmnist-ssl")) == {"data.dataset"}
    # mnist-ssl-fast departs from the reference in the generator's output nonlinearity alone
    assert diff_fields(m, get_preset("mnist-ssl-fast")) == {"model.generator_output"}
    assert get_preset("mnist-ssl-fast").model.generator_output == "softplus"
    # fmnist-ssl-fast: fmnist-ssl with the PyTorch port's five departures, and nothing else
    f, fast = get_preset("fmnist-ssl"), get_preset("fmnist-ssl-fast")
    assert diff_fields(f, fast) == {
        "model.data_init",
        "model.generator_output",
        "optim.name",
        "train.extra_generator_step",
        "data.labeled_batches",
    }
    assert (fast.model.data_init, fast.model.generator_output, fast.optim.name) == (False, "softplus", "adam")
    assert (fast.train.extra_generator_step, fast.data.labeled_batches) == (1.0, "tiled")
    c = get_preset("cifar10-ssl")
    assert c.data.labels_per_class * 10 == 4000 and c.optim.lr == 0.0003 and c.loss.feature_distance == "l1"
    assert c.optim.decay_start == pytest.approx(2 / 3) and c.train.steps == 1200 * 500
    s = get_preset("svhn-ssl")
    assert s.data.labels_per_class * 10 == 1000 and s.train.steps == 900 * 732


def test_all_presets_validate_and_differ_from_default_in_few_fields():
    for name in PRESETS:
        cfg = get_preset(name)
        assert len(diff_fields(Config(), cfg)) <= 24


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset"):
        get_preset("imagenet-ssl")
