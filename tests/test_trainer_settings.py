"""The configuration reaches every network and trainer setting a preset or an ablation varies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from improved_gan.training import distributed as D_
from improved_gan.training.config import override
from improved_gan.training.experiment import build_losses, build_networks
from improved_gan.training.presets import get_preset
from improved_gan.training.trainer import Trainer
from test_presets_run import SHAPES, fake_data

TINY = ["data.batch_size=4", "model.init_batch=8"]


def _nets(preset: str, *sets: str):
    cfg = override(get_preset(preset), [*TINY, *sets])
    shape = SHAPES.get(cfg.data.dataset, (2,))
    torch.manual_seed(0)
    return build_networks(cfg, image_shape=shape, num_classes=10)


@pytest.mark.parametrize(
    "preset, documented",
    [
        # the values each architecture's docstring gives (models/*.py): naming them changes nothing
        ("fmnist-ssl", ["model.input_noise=0.3", "model.hidden_noise=0.5", "model.out_init_scale=1"]),
        ("cifar10-ssl", ["model.dropout=0.5", "model.input_dropout=0.2", "model.input_noise=0"]),
        ("cifar10-gan", ["model.input_dropout=0", "model.input_noise=0.2", "model.out_init_scale=0.1"]),
        ("fmnist-gan", ["model.dropout=0", "model.input_noise=0.2", "model.train_hidden_scale=false"]),
        (
            "ring8-gan",
            ["model.minibatch_median=1", "model.train_hidden_scale=true", "model.out_init_scale=1"],
        ),
    ],
)
def test_defaults_are_the_architectures_own_values(preset, documented):
    g0, d0 = _nets(preset)
    g1, d1 = _nets(preset, *documented)
    assert repr(g0) == repr(g1) and repr(d0) == repr(d1)
    for a, b in zip(
        [*g0.state_dict().values(), *d0.state_dict().values()],
        [*g1.state_dict().values(), *d1.state_dict().values()],
    ):
        assert torch.equal(a, b)
    assert [p.requires_grad for p in d0.parameters()] == [p.requires_grad for p in d1.parameters()]


def test_dropout_and_input_settings_reach_the_discriminator():
    _, d = _nets("cifar10-ssl", "model.dropout=0.3", "model.input_dropout=0.1", "model.input_noise=0.05")
    assert (d.dropout1.p, d.dropout2.p, d.input_dropout.p, d.input_noise.sigma) == (0.3, 0.3, 0.1, 0.05)
    _, d = _nets("fmnist-gan", "model.dropout=0.25", "model.input_noise=0")
    assert (d.dropout.p, d.input_noise.sigma) == (0.25, 0.0)
    _, d = _nets("fmnist-ssl", "model.input_noise=0.1", "model.hidden_noise=0.2")
    assert d.input_noise.sigma == 0.1 and {n.sigma for n in d.noise} == {0.2}


@pytest.mark.parametrize("preset", ["fmnist-ssl", "fmnist-gan"])
def test_train_hidden_scale_switches_the_hidden_scales_gradient(preset):
    for value in (True, False):
        _, d = _nets(preset, f"model.train_hidden_scale={str(value).lower()}")
        hidden = [m for name, m in d.named_modules() if hasattr(m, "g") and not name.startswith("out")]
        assert hidden and all(m.g.requires_grad is value for m in hidden)
        assert d.out.g.requires_grad  # the output layer's scale is always trained


@pytest.mark.parametrize("scale", [0.1, 2.0])
def test_out_init_scale_sets_the_std_of_the_logits_after_the_data_dependent_init(scale):
    cfg = override(
        get_preset("fmnist-gan"),
        ["data.batch_size=8", "model.init_batch=64", f"model.out_init_scale={scale}"],
    )
    data = fake_data("fashion-mnist", n=64)
    t = Trainer(cfg, data)
    # the init batch (the trainer's seeded choice of init_batch examples: here all 64) through D in eval mode
    # (no noise), as the init saw it in training mode minus the noise: compare with the init's own target
    assert t.D.out.init_scale == scale and t.G.out.init_scale == scale
    t.D.eval()
    with torch.no_grad():
        logits = t.D.out(t.D.minibatch(t.D(data.train_x)[1])).numpy()
    # the init normalises each logit to std `scale` on its (noisy) init batch; without the noise the std is near it
    assert np.std(logits, axis=0) == pytest.approx(scale, rel=0.35)


def test_minibatch_median_is_the_median_pairwise_kernel_distance_after_init():
    cfg = override(
        get_preset("ring8-gan"), ["data.batch_size=16", "model.init_batch=64", "model.minibatch_median=0.5"]
    )
    t = Trainer(cfg, fake_data("ring8"))
    assert t.D.minibatch.median == 0.5
    gen = torch.Generator().manual_seed(int(t.cfg.seed))
    x = t.data.toy.sample(64, generator=gen)
    with torch.no_grad():
        feats = t.D(x)[1]
        _, m = t.D.minibatch._features(feats)  # (N, B, C)
    m = m.numpy()
    # an independent L1 distance over pairs i < j, per kernel: its median is of the order of the target
    i, j = np.triu_indices(m.shape[0], 1)
    med = np.median(np.abs(m[i] - m[j]).sum(-1), axis=0)  # (B,)
    assert np.median(med) == pytest.approx(0.5, rel=0.5)


def _numpy_softplus(x):
    return np.logaddexp(0.0, x)


@pytest.mark.parametrize("which", ["saturating", "nonsaturating"])
def test_generator_loss_choices_are_the_k_plus_1_minimax_and_non_saturating_losses(which):
    cfg = override(get_preset("fmnist-gan"), [f"loss.generator={which}"])
    logits = torch.randn(6, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = build_losses(cfg).generator(logits, None, None).item()
    lse = np.log(np.exp(logits.numpy()).sum(1))  # D(x) = sigmoid(lse)
    # saturating: G minimises E log(1 - D) = -E softplus(lse); non-saturating: -E log D = E softplus(-lse)
    expected = -_numpy_softplus(lse).mean() if which == "saturating" else _numpy_softplus(-lse).mean()
    assert got == pytest.approx(expected, rel=1e-12)


def test_a_saturating_run_trains():
    t = Trainer(
        override(get_preset("fmnist-gan"), [*TINY, "loss.generator=saturating"]), fake_data("fashion-mnist")
    )
    out = t.train_step()
    assert math.isfinite(out["loss_g"]) and out["loss_g"] < 0  # -E softplus(.) is negative


@pytest.mark.parametrize(
    "preset", ["fmnist-ssl", "fmnist-gan"]
)  # fmnist-gan: VBN (a reference pass per G update)
def test_g_steps_makes_that_many_generator_updates_per_discriminator_update(preset):
    t = Trainer(
        override(get_preset(preset), [*TINY, "data.labels_per_class=-1", "train.g_steps=3"]),
        fake_data("fashion-mnist"),
    )
    g_before = [p.detach().clone() for p in t.G.parameters()]
    for _ in range(2):
        out = t.train_step()
    assert math.isfinite(out["loss_g"]) and t.step == 2

    def steps(opt):
        counts = {int(s["step"]) for s in opt.state.values()}
        assert len(counts) == 1
        return counts.pop()

    assert (steps(t.opt_d), steps(t.opt_g)) == (2, 6)
    assert any(not torch.equal(a, b) for a, b in zip(g_before, t.G.parameters()))


def test_the_time_budget_of_the_configuration_reaches_the_schedule():
    t = Trainer(
        override(get_preset("fmnist-ssl"), [*TINY, "data.labels_per_class=2", "train.time_budget_minutes=2"]),
        fake_data("fashion-mnist"),
    )
    assert t.time_budget_seconds == 120.0
    t.wall_seconds = 60.0
    assert t.progress() == pytest.approx(0.5)


def test_average_buffers_is_one_all_reduce_of_every_float_buffer(monkeypatch):
    net = torch.nn.Sequential(torch.nn.BatchNorm1d(3, affine=False), torch.nn.BatchNorm2d(2, affine=False))
    with torch.no_grad():
        for b in net.buffers():
            if b.is_floating_point():
                b.uniform_()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    calls = []

    def fake_all_reduce(t, *args, **kwargs):  # the other rank holds this rank's values + 1
        calls.append(t.numel())
        t.mul_(2).add_(1)

    monkeypatch.setattr(D_.dist, "all_reduce", fake_all_reduce)
    D_.average_buffers(net, D_.DistInfo(rank=0, world_size=2))
    assert calls == [3 + 3 + 2 + 2]  # running mean and var of both norms, one call
    for k, v in net.state_dict().items():
        expected = before[k] + 0.5 if v.is_floating_point() else before[k]  # (x + (x + 1)) / 2
        assert torch.equal(v, expected), k
