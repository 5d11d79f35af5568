"""Trainer.test_accuracy: every test example counted once; batch-coupled D sees only training-size batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from improved_gan.training.config import override
from improved_gan.training.presets import get_preset
from improved_gan.training.trainer import TrainData, Trainer


def _data(n_test: int) -> TrainData:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(60, 1, 28, 28, generator=gen)
    y = torch.arange(60) % 10
    tx = torch.rand(n_test, 1, 28, 28, generator=gen)
    ty = torch.randint(0, 10, (n_test,), generator=gen)
    return TrainData(
        name="fashion-mnist",
        image_shape=(1, 28, 28),
        num_classes=10,
        train_x=x,
        train_y=y,
        test_x=tx,
        test_y=ty,
    )


def _recorded_batches(trainer: Trainer) -> tuple[list[int], list[np.ndarray]]:
    sizes, logits = [], []

    def hook(_module, inputs, output):
        sizes.append(inputs[0].shape[0])
        logits.append(output[0].detach().numpy().copy())

    trainer.D_eval.register_forward_hook(hook)
    return sizes, logits


@pytest.mark.parametrize("n_test", [23, 16, 5])
def test_batch_coupled_discriminator_is_scored_in_training_size_batches(n_test):
    cfg = override(get_preset("fmnist-gan"), ["data.batch_size=8", "model.init_batch=8"])
    trainer = Trainer(cfg, _data(n_test))
    assert not trainer.joint_d_pass  # minibatch discrimination couples the batch
    sizes, logits = _recorded_batches(trainer)
    acc = trainer.test_accuracy(use_ema=True)
    assert set(sizes) == {min(8, n_test)}
    # independent count: batch k covers [8k, 8k+8) except the last, which is the final 8 examples
    y = trainer.data.test_y.numpy()
    starts = list(range(0, n_test, 8))
    correct = 0
    for k, i in enumerate(starts):
        j = max(min(i, n_test - 8), 0)
        pred = logits[k].argmax(1)[i - j :]
        correct += int((pred == y[i : min(i + 8, n_test)]).sum())
    assert acc == correct / n_test
    assert len(sizes) == len(starts)


def test_uncoupled_discriminator_accuracy_is_the_full_batch_argmax():
    cfg = override(
        get_preset("fmnist-ssl"), ["data.batch_size=10", "model.init_batch=20", "data.labels_per_class=2"]
    )
    trainer = Trainer(cfg, _data(37))
    assert trainer.joint_d_pass
    for batch_size in (None, 5, 36):
        acc = trainer.test_accuracy(use_ema=False, batch_size=batch_size)
        trainer.D.eval()
        with torch.no_grad():
            pred = trainer.D(trainer.data.test_x)[0].argmax(1)
        trainer.D.train()
        expected = (pred == trainer.data.test_y).double().mean().item()
        assert acc == pytest.approx(expected, abs=1e-12)
