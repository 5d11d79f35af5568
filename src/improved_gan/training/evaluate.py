"""``improved-gan evaluate`` and ``improved-gan sample`` on a finished (or interrupted) run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from improved_gan.data import is_toy
from improved_gan.errors import CheckpointError, UserError
from improved_gan.training.build import build_trainer
from improved_gan.training.checkpoint import GENERATOR_FORMAT, atomic_write_json, load_checkpoint
from improved_gan.training.experiment import build_networks
from improved_gan.training.images import save_grid, save_scatter
from improved_gan.training.run_folder import RunFolder, read_run_config
from improved_gan.training.run_folder import json_safe as _finite


def evaluate_run(
    root: str | Path,
    *,
    metrics: tuple[str, ...] | None = None,
    num_samples: int | None = None,
    data_dir: str | None = None,
    device: str = "cpu",
    inception_weights: str | None = None,
) -> dict[str, Any]:
    """Evaluate the latest checkpoint of a run; write ``evaluation.json``; return the results.

    Semi-supervised runs: test accuracy of the EMA discriminator (and of the raw one). GAN runs: the sample-quality
    metrics of the registry (the run's by default) on ``num_samples`` generated samples.
    """
    folder = RunFolder(root)
    cfg, _run = read_run_config(folder.root)
    state = load_checkpoint(folder.last)
    # the weights only: evaluation draws no training random numbers, so a run of any number of processes loads
    trainer, to_unit = build_trainer(
        cfg, data_dir=data_dir, device=device, state=state, source=folder.last, restore_rng=False
    )
    data = trainer.data
    out: dict[str, Any] = {"step": trainer.step}
    if data.test_x is not None and cfg.loss.use_labels:
        acc = trainer.test_accuracy(use_ema=True)
        out.update(
            test_accuracy=acc, test_error=1.0 - acc, test_accuracy_raw=trainer.test_accuracy(use_ema=False)
        )
    names = metrics if metrics is not None else run_metric_names(cfg)
    if names:
        n = num_samples or cfg.train.eval_samples
        out["num_samples"] = n
        settings = {"inception_weights": inception_weights} if inception_weights else {}
        out.update(
            sample_metrics(
                trainer, to_unit, names, data_dir=data_dir, device=device, num_samples=n, **settings
            )
        )
    out = _finite(out)
    atomic_write_json(folder.root / "evaluation.json", out)
    return out


def run_metric_names(cfg) -> tuple[str, ...] | None:
    """The sample-quality metrics a run evaluates: ``train.metrics`` (None for ``none`` and for
    semi-supervised runs), else the data set's defaults (:func:`improved_gan.metrics.default_metrics`)."""
    if cfg.kind != "gan" or cfg.train.metrics == ("none",):
        return None
    from improved_gan.metrics.suite import default_metrics, parse_names

    return parse_names(cfg.train.metrics) if cfg.train.metrics else default_metrics(cfg.data.dataset)


def sample_metrics(
    trainer, to_unit, names, *, data_dir=None, device="cpu", num_samples=None, **settings
) -> dict:
    """The metrics ``names`` of ``num_samples`` (default ``train.eval_samples``) samples of the trainer's
    generator drawn with :data:`improved_gan.sampling.EVAL_SEED`: the training loop's evaluation and
    ``improved-gan evaluate`` both call this. Under torchrun the feature extraction is split across ranks.
    ``settings``: network settings of :func:`~improved_gan.metrics.compute_metrics` (``inception_weights``)."""
    from improved_gan.metrics.registry import compute_metrics
    from improved_gan.sampling import EVAL_SEED

    cfg = trainer.cfg
    n = num_samples or cfg.train.eval_samples
    x = trainer.generate(n, seed=EVAL_SEED)
    samples = to_unit(x)  # images in [0, 1] (N, C, H, W), or points (N, 2) (to_unit is the identity)
    shard = trainer.dist.world_size > 1
    return compute_metrics(
        names, samples, dataset=cfg.data.dataset, data_dir=data_dir, device=device, shard=shard, **settings
    )


def load_generator(root: str | Path, *, device: str = "cpu") -> tuple[torch.nn.Module, Any]:
    """The generator of a run from its small ``generator.pt`` (VBN reference statistics included)."""
    folder = RunFolder(root)
    cfg, run = read_run_config(folder.root)
    state = load_checkpoint(folder.generator, fmt=GENERATOR_FORMAT)
    g, _ = build_networks(cfg, image_shape=tuple(run["image_shape"]), num_classes=int(run["num_classes"]))
    try:
        g.load_state_dict(state["G"])
    except RuntimeError as exc:
        raise CheckpointError(f"{folder.generator}: does not match the run's generator ({exc})") from None
    return g.to(device).eval(), cfg


@torch.no_grad()
def sample_run(
    root: str | Path, *, num: int, out: str | Path, seed: int | None = None, device: str = "cpu"
) -> torch.Tensor:
    """Write ``num`` samples of a run's generator as a PNG grid (a scatter plot for 2-D toy data), drawn by
    :func:`improved_gan.sampling.generate` (seed :data:`~improved_gan.sampling.EVAL_SEED` by default)."""
    from improved_gan.sampling import EVAL_SEED, generate

    g, cfg = load_generator(root, device=device)
    x = generate(g, num, seed=EVAL_SEED if seed is None else seed, device=device)
    if is_toy(cfg.data.dataset):
        from improved_gan.data import load_toy

        save_scatter(x, out, centres=load_toy(cfg.data.dataset).centres, title=f"{cfg.preset}: {num} samples")
    else:
        from improved_gan.data import to_unit

        if x.ndim != 4:
            raise UserError(f"{root}: generator output has shape {tuple(x.shape)}, expected images")
        save_grid(to_unit(cfg.data.dataset, x), out)
    return x
