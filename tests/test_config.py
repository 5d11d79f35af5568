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
