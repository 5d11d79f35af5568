"""The semi-supervised recipe's switches that depart from the reference code (README, "Learning speed per step"):
no data-dependent init, a softplus generator output, an extra generator update while feature matching lags, labelled
batches drawn from the tiled labelled set, PyTorch's placement of Adam's eps for the first part of a run."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from improved_gan.errors import ConfigError
from improved_gan.models import MnistGenerator
from improved_gan.nn import WeightNormLinear
from improved_gan.training.config import override
from improved_gan.training.presets import get_preset
from improved_gan.training.trainer import TrainData, Trainer
from run_checks import assert_tensors_equal

N_TRAIN, BATCH = 40, 10


def _data() -> TrainData:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(N_TRAIN, 1, 28, 28, generator=gen)
    return TrainData(
        name="mnist",
        image_shape=(1, 28, 28),
        num_classes=10,
        train_x=x,
        train_y=torch.arange(N_TRAIN) % 10,
        test_x=torch.rand(7, 1, 28, 28, generator=gen),
        test_y=torch.arange(7) % 10,
    )


def _cfg(*sets: str):
    base = [f"data.batch_size={BATCH}", "model.init_batch=20", "data.labels_per_class=1"]
    return override(get_preset("mnist-ssl"), [*base, *sets])


def test_defaults_are_the_reference_choices():
    m, t = get_preset("mnist-ssl").model, get_preset("mnist-ssl").train
    assert m.data_init is True and m.generator_output == "sigmoid" and t.extra_generator_step == 0.0
    assert get_preset("mnist-ssl").data.labeled_batches == "permutation"


def _labeled_batches(trainer: Trainer, n: int) -> list[list[int]]:
    """The training-set indices of the next ``n`` labelled batches."""
    out = []
    for _ in range(n):
        x, y = trainer._labeled_batch()
        rows = [int(np.flatnonzero((trainer.data.train_x == xi).flatten(1).all(1))[0]) for xi in x]
        assert torch.equal(trainer.data.train_y[rows], y)
        out.append(rows)
    return out


def test_permutation_labeled_batches_hold_every_label_once():
    trainer = Trainer(_cfg(), _data())  # 10 labels (1 per class), batch 10
    labelled = sorted(trainer.lab_idx.tolist())
    batches = _labeled_batches(trainer, 8)
    for rows in batches:
        assert sorted(rows) == labelled
    assert len({tuple(rows) for rows in batches}) > 1  # a fresh order each time


def test_tiled_labeled_batches_repeat_labels_within_a_batch_and_balance_over_the_tiled_epoch():
    trainer = Trainer(_cfg("data.labeled_batches=tiled"), _data())
    labelled = sorted(trainer.lab_idx.tolist())
    copies = N_TRAIN // len(labelled)  # the labelled set tiled to the 40 unlabelled examples: 4 copies
    batches = _labeled_batches(trainer, 2 * copies)  # two epochs of the tiled set
    for epoch in (batches[:copies], batches[copies:]):
        counts = np.bincount([r for rows in epoch for r in rows], minlength=N_TRAIN)
        assert counts[labelled].tolist() == [copies] * len(labelled)  # each label `copies` times per epoch
        assert counts.sum() == copies * len(labelled)
    assert any(len(set(rows)) < len(rows) for rows in batches)  # repeats inside a batch


def test_labeled_batches_choice_is_checked():
    with pytest.raises(ConfigError, match="data.labeled_batches"):
        _cfg("data.labeled_batches=shuffled")


@pytest.mark.parametrize("data_init", [True, False])
def test_without_data_init_every_weight_norm_layer_keeps_scale_one_and_bias_zero(data_init):
    trainer = Trainer(_cfg(f"model.data_init={data_init}"), _data())
    layers = [m for m in trainer.D.modules() if isinstance(m, WeightNormLinear)]
    assert len(layers) == 6
    for layer in layers:
        g, bias = layer.g.detach().numpy(), layer.bias.detach().numpy()
        if data_init:  # set from the init batch: far from the defaults
            assert np.abs(g - 1.0).max() > 0.1 and np.abs(bias).max() > 0.1
        else:
            np.testing.assert_array_equal(g, np.ones(layer.out_features))
            np.testing.assert_array_equal(bias, np.zeros(layer.out_features))


@pytest.mark.parametrize("output", ["sigmoid", "softplus"])
def test_generator_output_nonlinearity(output):
    torch.manual_seed(0)
    g = MnistGenerator(output=output).eval()
    pre = {}

    def keep(_module, _inputs, out):
        pre["t"] = out.detach().numpy().copy()  # the output layer's pre-activation (N, 784)

    g.out.register_forward_hook(keep)
    z = g.sample_z(5, generator=torch.Generator().manual_seed(1))
    x = g(z).detach().numpy().reshape(5, -1).astype(np.float64)
    t = pre["t"].astype(np.float64)
    expected = 1.0 / (1.0 + np.exp(-t)) if output == "sigmoid" else np.log1p(np.exp(t))
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-6)


def test_softplus_output_only_for_the_mnist_networks():
    with pytest.raises(ConfigError, match="model.generator_output"):
        override(get_preset("cifar10-ssl"), ["model.generator_output=softplus"])
    with pytest.raises(ConfigError, match="train.extra_generator_step"):
        _cfg("train.extra_generator_step=-1")


@pytest.mark.parametrize("threshold,always", [(1e-12, True), (1e12, False)])
def test_extra_generator_update_from_the_third_epoch_when_the_loss_exceeds_the_threshold(threshold, always):
    steps = 11
    trainer = Trainer(_cfg(f"train.extra_generator_step={threshold}"), _data())
    for _ in range(steps):
        trainer.train_step()
    # steps 1..4 draw epoch 0, 5..8 epoch 1, 9.. epoch 2 of the 4-batch unlabelled set: from step 9 on, a
    # feature-matching loss above 1e-12 earns a second generator update, one above 1e12 never does
    batches_per_epoch = N_TRAIN // BATCH
    extra = sum(1 for s in range(steps) if s // batches_per_epoch >= 2) if always else 0
    p = next(iter(trainer.G.parameters()))
    assert trainer.opt_g.state[p]["step"] == steps + extra
    assert trainer.opt_d.state[next(iter(trainer.D.parameters()))]["step"] == steps


def test_eps_goes_inside_the_root_at_the_configured_fraction_of_the_run():
    # 10 steps, switch at 0.3: steps 1-3 run at progress 0, 0.1, 0.2 (eps outside), steps 4-10 inside
    cfg = _cfg("train.steps=10", "optim.eps_inside_from=0.3")
    trainer, seen = Trainer(cfg, _data()), []
    for _ in range(10):
        trainer.train_step()
        seen.append([g["eps_inside"] for opt in (trainer.opt_d, trainer.opt_g) for g in opt.param_groups])
    assert seen == [[False, False]] * 3 + [[True, True]] * 7
    assert Trainer(_cfg("train.steps=10"), _data()).opt_d.param_groups[0]["eps_inside"] is True


def test_eps_outside_for_the_whole_run_trains_as_pytorch_adam():
    # eps placement is the only difference between the two optimizers: with eps outside until the end the run
    # follows torch.optim.Adam's (to rounding: the two evaluate the same formula in a different order)
    def trained(*sets):  # one run after the other: the runs draw their noise from the global generator
        trainer = Trainer(_cfg("train.steps=6", *sets), _data())
        for _ in range(5):
            trainer.train_step()
        return torch.cat([p.detach().flatten() for p in trainer.D.parameters()])

    pa, pb, pc = trained("optim.eps_inside_from=1.0"), trained("optim.name=adam"), trained()
    torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5)
    assert (pa - pc).abs().max() > 1e-3  # the reference placement moves the parameters elsewhere


@pytest.mark.parametrize(
    "sets,message",
    [
        (("optim.eps_inside_from=1.5",), "expected a fraction in [0, 1]"),
        (("optim.eps_inside_from=0.5", "optim.name=adam"), "only for optim.name=reference_adam"),
    ],
)
def test_eps_inside_from_is_checked(sets, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        _cfg(*sets)


def test_the_trainer_checks_a_configuration_built_in_python():
    # the same check as --set, for a Config made with dataclasses.replace (no override() on the way)
    cfg = _cfg()
    bad = replace(cfg, optim=replace(cfg.optim, name="adam", eps_inside_from=0.5))
    with pytest.raises(ConfigError, match="only for optim.name=reference_adam"):
        Trainer(bad, _data())


def _assert_resume_is_bit_identical(sets: tuple[str, ...], steps: int, stop: int, tmp_path) -> None:
    """``steps`` steps in one go against ``stop`` steps, a checkpoint through torch.save / load, and the rest."""
    full = Trainer(_cfg(*sets), _data())
    for _ in range(steps):
        full.train_step()
    part = Trainer(_cfg(*sets), _data())
    for _ in range(stop):
        part.train_step()
    torch.save(part.state_dict(), tmp_path / "ckpt.pt")
    resumed = Trainer(_cfg(*sets), _data())
    resumed.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True))
    for _ in range(steps - stop):
        resumed.train_step()
    assert_tensors_equal(full.state_dict(), resumed.state_dict())


def test_resume_with_every_switch_on_is_bit_identical(tmp_path):
    sets = (
        "model.data_init=false",
        "model.generator_output=softplus",
        "train.extra_generator_step=1e-12",
        "optim.name=adam",
        "data.labeled_batches=tiled",
    )
    _assert_resume_is_bit_identical(sets, 11, 6, tmp_path)


def test_resume_across_the_eps_switch_is_bit_identical(tmp_path):
    # 11 steps, switch at 0.5: saved after step 4, eps goes inside the root from step 7 (progress 6/11) on
    _assert_resume_is_bit_identical(("train.steps=11", "optim.eps_inside_from=0.5"), 11, 4, tmp_path)
