"""Periodic evaluation of a run: test accuracy for semi-supervised runs, sample-quality metrics for GAN runs.

:class:`_Evaluator` is called by the schedule (:mod:`improved_gan.training.schedule`) at every evaluation;
:func:`_check_metrics_available` runs the metrics once on a few random samples before training starts, so a
missing network or weights file fails at once, not at the first evaluation. Evaluation draws from its own random
streams (:func:`_own_random_numbers`), never from the training's.
"""

from __future__ import annotations

import warnings

import torch

from improved_gan.training.run_folder import SAMPLE_SEED
from improved_gan.training.trainer import Trainer


class _Evaluator:
    """Periodic evaluation: test accuracy for semi-supervised runs, sample-quality metrics for GAN runs."""

    def __init__(self, trainer: Trainer, to_unit, *, data_dir: str | None, device: str):
        self.trainer, self.to_unit, self.data_dir, self.device = trainer, to_unit, data_dir, device
        cfg = trainer.cfg
        self.metric_names: tuple[str, ...] = ()
        if cfg.kind == "gan" and cfg.train.metrics != ("none",):
            from improved_gan.metrics.registry import default_metrics

            self.metric_names = cfg.train.metrics or tuple(default_metrics(cfg.data.dataset))

    def __call__(self) -> dict[str, float]:
        with _own_random_numbers(self.trainer):
            return self._evaluate()

    def _evaluate(self) -> dict[str, float]:
        t, cfg = self.trainer, self.trainer.cfg
        out: dict[str, float] = {}
        if t.data.test_x is not None and cfg.loss.use_labels:
            acc = t.test_accuracy(use_ema=True)
            out.update(
                test_accuracy=acc, test_error=1.0 - acc, test_accuracy_raw=t.test_accuracy(use_ema=False)
            )
        if self.metric_names:
            from improved_gan.metrics.registry import compute_metrics

            samples = self.to_unit(t.generate(cfg.train.eval_samples, seed=SAMPLE_SEED + 1))
            out.update(
                compute_metrics(
                    self.metric_names,
                    samples,
                    dataset=cfg.data.dataset,
                    data_dir=self.data_dir,
                    device=self.device,
                )
            )
        return out


def _own_random_numbers(trainer: Trainer):
    """Evaluation must not draw from the training's global random streams: building a metric network (first use
    in a process only: then it is cached) initialises its layers from the global generator, so without this a
    run's trajectory depended on whether an earlier run in the same process (``ablate``) had loaded it."""
    cuda = [trainer.device.index or 0] if trainer.device.type == "cuda" else []
    return torch.random.fork_rng(devices=cuda)


def _check_metrics_available(trainer: Trainer, data_dir: str | None) -> None:
    """Fail before training, not at the first evaluation, when a metric's network or weights are missing:
    evaluate the run's metrics once on a few random samples (this also loads and caches the networks)."""
    cfg = trainer.cfg
    if cfg.kind != "gan" or cfg.train.metrics == ("none",):
        return
    from improved_gan.metrics.registry import compute_metrics, default_metrics

    names = cfg.train.metrics or tuple(default_metrics(cfg.data.dataset))
    fake = torch.rand(20, *trainer.data.image_shape, generator=torch.Generator().manual_seed(0))
    from improved_gan.metrics import SingularCovarianceWarning

    with _own_random_numbers(trainer), warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularCovarianceWarning)  # 20 samples: singular by construction
        compute_metrics(names, fake, dataset=cfg.data.dataset, data_dir=data_dir, device=str(trainer.device))
