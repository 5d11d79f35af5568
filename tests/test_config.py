"""Configuration overrides, validation and the JSON round trip."""

import pytest

from improved_gan.errors import ConfigError
from improved_gan.training.config import Config, diff_fields, flat_fields, from_dict, override
from improved_gan.training.presets import get_preset


def test_override_sets_nested_fields_with_their_types():
    cfg = override(
        Config(),
        [
            "optim.lr=0.01",
            "data.batch_size=7",
            "loss.use_labels=true",
            "seed=5",
            "train.metrics=classifier_score,classifier_fid",
        ],
    )
    assert cfg.optim.lr == 0.01 and isinstance(cfg.optim.lr, float)
    assert cfg.data.batch_size == 7 and isinstance(cfg.data.batch_size, int)
    assert cfg.seed == 5
    assert cfg.train.metrics == ("classifier_score", "classifier_fid")
    assert diff_fields(Config(), cfg) == {"optim.lr", "data.batch_size", "seed", "train.metrics"}


@pytest.mark.parametrize(
    "item",
    [
        "nope.lr=1",
        "optim.learning_rate=1",
        "optim.lr=abc",
        "data.batch_size=1.5",
        "data.batch_size=0",
        "optim.beta1=1.0",
        "model.arch=resnet",
        "loss.real_target=0",
        "loss.use_labels=maybe",
        "optim.lr",
    ],
)
def test_bad_overrides_raise_config_error_naming_the_key(item):
    with pytest.raises(ConfigError) as info:
        override(Config(), [item])
    assert item.split("=")[0].split(".")[0] in str(info.value) or "KEY=VALUE" in str(info.value)


def test_json_round_trip_of_every_field():
    cfg = override(get_preset("fmnist-gan"), ["train.metrics=a,b", "optim.lr=0.0005"])
    back = from_dict(cfg.to_dict())
    assert back == cfg
    assert flat_fields(back) == flat_fields(cfg)


def test_from_dict_rejects_foreign_json():
    with pytest.raises(ConfigError):
        from_dict({"hello": 1, "data": {"unknown": 3}})


def test_configs_are_frozen():
    cfg = Config()
    with pytest.raises(AttributeError):
        cfg.seed = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "key, near",
    [
        ("optim.lrr", "optim.lr"),
        ("train.lr", "optim.lr"),
        ("model.minibatch_kernel", "model.minibatch_kernels"),
    ],
)
def test_an_unknown_key_names_the_nearest_keys_not_all_of_them(key, near):
    with pytest.raises(ConfigError) as info:
        override(Config(), [f"{key}=1"])
    msg = str(info.value)
    assert near in msg and f"--set {key}:" in msg
    # not the whole list: the message names at most 3 keys
    assert sum(k in msg.replace(f"--set {key}", "") for k in flat_fields(Config())) <= 3


def test_an_unknown_key_with_no_near_one_points_to_the_listing():
    with pytest.raises(ConfigError, match="improved-gan presets PRESET"):
        override(Config(), ["zzzz=1"])


def test_optional_network_settings_parse_none_and_numbers():
    cfg = override(get_preset("cifar10-ssl"), ["model.dropout=0.3", "model.train_hidden_scale=true"])
    assert cfg.model.dropout == 0.3 and cfg.model.train_hidden_scale is True
    assert override(cfg, ["model.dropout=none"]).model.dropout is None
    back = from_dict(cfg.to_dict())
    assert back == cfg


@pytest.mark.parametrize(
    "preset, item, match",
    [
        ("fmnist-ssl", "model.dropout=0.1", "model.dropout: model.arch=mnist has no such setting"),
        ("ring8-gan", "model.input_noise=0.1", "model.input_noise: model.arch=toy"),
        ("fmnist-gan", "model.minibatch_median=1", "model.minibatch_median"),
        ("fmnist-gan", "model.dropout=1.0", r"model.dropout=1.0: expected a probability in \[0, 1\)"),
        ("fmnist-gan", "model.input_noise=-1", "model.input_noise=-1.0"),
        ("fmnist-gan", "model.out_init_scale=0", "model.out_init_scale=0.0"),
        ("fmnist-gan", "train.g_steps=0", "train.g_steps"),
        ("fmnist-gan", "train.time_budget_minutes=0", "train.time_budget_minutes"),
        ("fmnist-gan", "loss.generator=minimax", "loss.generator"),
    ],
)
def test_settings_an_architecture_lacks_or_out_of_range_are_refused(preset, item, match):
    with pytest.raises(ConfigError, match=match):
        override(get_preset(preset), [item])


def test_the_time_budget_is_part_of_the_saved_configuration():
    cfg = override(get_preset("fmnist-ssl"), ["train.time_budget_minutes=2.5"])
    assert cfg.to_dict()["train"]["time_budget_minutes"] == 2.5
    assert from_dict(cfg.to_dict()).train.time_budget_minutes == 2.5
    old = cfg.to_dict()
    del old["train"]["time_budget_minutes"], old["train"]["g_steps"], old["model"]["dropout"]
    back = from_dict(old)  # a config.json written before these fields: their defaults
    assert back.train.time_budget_minutes is None and back.train.g_steps == 1 and back.model.dropout is None
