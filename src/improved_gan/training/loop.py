"""Compatibility alias: the trainer now lives in :mod:`improved_gan.training.trainer` (the step) and
:mod:`improved_gan.training.loss_meter` (the loss sums); import from there."""

from improved_gan.training.trainer import TrainData, Trainer

__all__ = ["TrainData", "Trainer"]
