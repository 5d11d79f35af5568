"""From a configuration to a ready :class:`~improved_gan.training.trainer.Trainer`: the data set read and
normalised onto the device (:func:`load_train_data`), the networks and optimizers built, and a checkpoint's
state restored (:func:`build_trainer`). Used by train, resume, ``evaluate`` and ``sample``.

On CUDA :func:`build_trainer` also applies the configuration's GPU options (``train.tf32``,
``train.cudnn_benchmark``, ``train.deterministic``: :func:`~improved_gan.training.device_options.apply_device_options`,
process-wide) before the networks are built; on the CPU they change nothing.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import torch

from improved_gan.data import is_toy, load_dataset, load_toy
from improved_gan.errors import CheckpointError, ConfigError
from improved_gan.training import distributed as D_
from improved_gan.training.batching import per_rank_batch
from improved_gan.training.config import Config
from improved_gan.training.device_options import apply_device_options
from improved_gan.training.trainer import TrainData, Trainer

# Modules every run imports later (plot_curves needs matplotlib's Agg canvas): imported in a background thread
# while the data set is decoded (gzip and the normalisation release the GIL), off the start-up's critical path.
_PRELOAD = ("matplotlib.figure", "matplotlib.backends.backend_agg")


def _preload_modules() -> None:
    import importlib

    for name in _PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the later import raises where it matters
            return


def load_train_data(cfg: Config, *, data_dir: str | None, device: str) -> tuple[TrainData, Any]:
    """Read and normalise the data set of ``cfg`` onto ``device``; returns ``(TrainData, to_unit)``."""
    name = cfg.data.dataset
    if is_toy(name):
        toy = load_toy(name)
        return TrainData(name=name, image_shape=(2,), num_classes=1, toy=toy), (lambda x: x)
    preload = threading.Thread(target=_preload_modules, name="improved-gan-preload", daemon=True)
    preload.start()
    try:
        ds = load_dataset(name, data_dir=data_dir)
        dev = torch.device(device)
        data = TrainData(
            name=name,
            image_shape=tuple(ds.image_shape),
            num_classes=ds.num_classes,
            train_x=ds.normalize(ds.train_images).to(dev),
            train_y=ds.train_labels.to(dev),
            test_x=ds.normalize(ds.test_images).to(dev),
            test_y=ds.test_labels.to(dev),
        )
    finally:
        preload.join()  # no import runs concurrently with the rest of the run
    return data, ds.to_unit


def build_trainer(
    cfg: Config,
    *,
    data_dir: str | None,
    device: str,
    dist: D_.DistInfo | None = None,
    state: dict[str, Any] | None = None,
    source: Path | None = None,
    restore_rng: bool = True,
) -> tuple[Trainer, Any]:
    """Load the data and build the :class:`Trainer` of ``cfg``, restoring ``state`` (read from ``source``) if given
    (``restore_rng=False``: the weights only, for evaluation, whatever the number of processes that trained).

    A state that does not fit raises :class:`CheckpointError` naming ``source``: ``missing 'KEY'`` for an entry
    the checkpoint lacks, else what PyTorch found (e.g. a weight of another shape), whitespace joined to one
    line and never cut.

    A global batch (``data.batch_size``) that does not divide over the processes raises :class:`ConfigError`
    before the data is read (printed by rank 0 alone)."""
    dist = dist or D_.DistInfo()
    try:
        per_rank_batch(cfg.data.batch_size, dist.world_size)
    except ConfigError as exc:
        exc.quiet = not dist.is_main  # every rank finds the same: rank 0 alone reports it
        raise
    if torch.device(device).type == "cuda":
        tc = cfg.train
        apply_device_options(tf32=tc.tf32, cudnn_benchmark=tc.cudnn_benchmark, deterministic=tc.deterministic)
    data, to_unit = load_train_data(cfg, data_dir=data_dir, device=device)
    trainer = Trainer(cfg, data, device=device, dist=dist)
    if state is not None:
        try:
            trainer.load_state_dict(state, restore_rng=restore_rng)
        except KeyError as exc:
            key = exc.args[0] if exc.args else "?"
            raise CheckpointError(f"{source}: missing {key!r}") from None
        except (RuntimeError, ValueError, TypeError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise CheckpointError(f"{source}: does not match the run's configuration: {reason}") from None
    return trainer, to_unit
