"""Every preset and ablation variant builds and runs 2 training steps on fake data of its shape."""

from __future__ import annotations

import pytest
import torch

from improved_gan.data import load_toy
from improved_gan.training.config import override
from improved_gan.training.presets import PRESETS, get_preset
from improved_gan.training.trainer import TrainData, Trainer

SHAPES = {"fashion-mnist": (1, 28, 28), "mnist": (1, 28, 28), "cifar10": (3, 32, 32), "svhn": (3, 32, 32)}


def fake_data(name: str, n: int = 40) -> TrainData:
    if name in ("ring8", "grid25"):
        return TrainData(name=name, image_shape=(2,), num_classes=1, toy=load_toy(name))
    gen = torch.Generator().manual_seed(0)
    shape = SHAPES[name]
    lo = 0.0 if name in ("fashion-mnist", "mnist") else -1.0
    x = torch.rand(n, *shape, generator=gen) * (1 - lo) + lo
    y = torch.arange(n) % 10
    return TrainData(
        name=name, image_shape=shape, num_classes=10, train_x=x, train_y=y, test_x=x[:10], test_y=y[:10]
    )


def _param(name: str):
    # The reference conv networks take seconds per step on 2 cores: their ablation variants run with -m slow.
    slow = name.startswith("cifar10-gan") and name != "cifar10-gan" or name == "svhn-ssl"
    return pytest.param(name, marks=pytest.mark.slow) if slow else name


@pytest.mark.parametrize("name", [_param(n) for n in PRESETS])
def test_preset_runs_two_steps(name):
    cfg = get_preset(name)
    small = ["data.batch_size=4", "model.init_batch=8"]
    if cfg.data.labels_per_class:
        small.append("data.labels_per_class=2")
    cfg = override(cfg, small)
    trainer = Trainer(cfg, fake_data(cfg.data.dataset))
    before = [p.detach().clone() for p in trainer.G.parameters()]
    for _ in range(2):
        losses = trainer.train_step()
    assert trainer.step == 2
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.G.parameters()))
    x = trainer.generate(3, seed=0)
    assert x.shape == (3, *trainer.data.image_shape)
