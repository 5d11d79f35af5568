"""Periodic evaluation of a run: test accuracy for semi-supervised runs, sample-quality metrics for GAN runs.

:class:`_Evaluator` is called by the schedule (:mod:`improved_gan.training.schedule`) at every evaluation;
:func:`_check_metrics_available` checks before training starts that every metric's network, weights and
reference data are there, so a missing one fails at once, not at the first evaluation. Evaluation draws from its own random
streams (:func:`_own_random_numbers`), never from the training's.
"""

from __future__ import annotations

import torch

from improved_gan.training.trainer import Trainer


class _Evaluator:
    """Periodic evaluation: test accuracy for semi-supervised runs, sample-quality metrics for GAN runs."""

    def __init__(self, trainer: Trainer, to_unit, *, data_dir: str | None, device: str):
        self.trainer, self.to_unit, self.data_dir, self.device = trainer, to_unit, data_dir, device
        from improved_gan.training.evaluate import run_metric_names

        self.metric_names: tuple[str, ...] = run_metric_names(trainer.cfg) or ()

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
            from improved_gan.training.evaluate import sample_metrics

            out.update(
                sample_metrics(t, self.to_unit, self.metric_names, data_dir=self.data_dir, device=self.device)
            )
        return out


def _own_random_numbers(trainer: Trainer):
    """Evaluation must not draw from the training's global random streams: building a metric network (first use
    in a process only: then it is cached) initialises its layers from the global generator, so without this a
    run's trajectory depended on whether an earlier run in the same process (``ablate``) had loaded it."""
    cuda = [trainer.device.index or 0] if trainer.device.type == "cuda" else []
    return torch.random.fork_rng(devices=cuda)


def _check_metrics_available(trainer: Trainer, data_dir: str | None) -> None:
    """Fail before training, not at the first evaluation, when a metric is unknown or its network, weights or
    reference data are missing (:func:`improved_gan.metrics.suite.check_available`; the networks stay cached)."""
    from improved_gan.metrics.suite import check_available
    from improved_gan.training.evaluate import run_metric_names

    names = run_metric_names(trainer.cfg)
    if names:
        with _own_random_numbers(trainer):
            check_available(names, trainer.cfg.data.dataset, device=str(trainer.device), data_dir=data_dir)
