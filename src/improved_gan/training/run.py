"""A training run and its folder: ``config.json``, ``metrics.jsonl``, ``summary.json``, ``samples/``,
``checkpoints/last.pt``, ``generator.pt``, ``curves.png`` (README, "A run folder").

:func:`train` starts a run, :func:`resume` continues one from ``checkpoints/last.pt``; both call :func:`_loop`,
which owns the schedule of evaluations, sample grids and checkpoints. Only rank 0 writes files or prints.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from improved_gan.data import is_toy, load_dataset, load_toy
from improved_gan.errors import CheckpointError, UserError
from improved_gan.training import distributed as D_
from improved_gan.training.checkpoint import (
    GENERATOR_FORMAT,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    load_checkpoint,
    save_checkpoint,
)
from improved_gan.training.config import Config, from_dict
from improved_gan.training.images import save_grid, save_scatter
from improved_gan.training.loop import TrainData, Trainer

SAMPLE_SEED = 12345  # fixed z for the sample grids, so grids of successive evaluations are comparable


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
    import threading

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


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinities (e.g. ``mode_kl`` with no high-quality sample) become null: JSON has no NaN."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


class RunFolder:
    """Paths of a run folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.config = self.root / "config.json"
        self.metrics = self.root / "metrics.jsonl"
        self.summary = self.root / "summary.json"
        self.samples = self.root / "samples"
        self.checkpoints = self.root / "checkpoints"
        self.last = self.checkpoints / "last.pt"
        self.generator = self.root / "generator.pt"
        self.curves = self.root / "curves.png"


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a kill: drop it and what follows
    return rows


def read_run_config(root: str | Path) -> tuple[Config, dict[str, Any]]:
    """The :class:`Config` and the ``run`` section (world size, data shape) of a run folder."""
    folder = RunFolder(root)
    if not folder.config.is_file():
        raise CheckpointError(f"{folder.root}: not a run folder (no config.json)")
    try:
        raw = json.loads(folder.config.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{folder.config}: not valid JSON ({exc.msg})") from None
    if not isinstance(raw, dict) or "run" not in raw:
        raise CheckpointError(f"{folder.config}: not an improved-gan run configuration")
    return from_dict(raw), raw["run"]


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


def _write_samples(trainer: Trainer, to_unit, folder: RunFolder) -> None:
    """``samples/step_XXXXXXX.png`` (and a copy as ``samples/latest.png``) from a fixed z."""
    cfg = trainer.cfg
    path = folder.samples / f"step_{trainer.step:07d}.png"
    if trainer.data.toy is not None:
        pts = trainer.generate(2000, seed=SAMPLE_SEED)
        save_scatter(pts, path, centres=trainer.data.toy.centres, title=f"{cfg.preset}, step {trainer.step}")
    elif cfg.train.sample_grid > 0:
        save_grid(to_unit(trainer.generate(cfg.train.sample_grid, seed=SAMPLE_SEED)), path)
    else:
        return
    atomic_write_bytes(folder.samples / "latest.png", path.read_bytes())


def _save_generator(trainer: Trainer, folder: RunFolder) -> None:
    save_checkpoint(
        folder.generator,
        {"step": trainer.step, "G": trainer.G.state_dict(), "config": trainer.cfg.to_json()},
        fmt=GENERATOR_FORMAT,
    )


def _save(trainer: Trainer, folder: RunFolder, dist: D_.DistInfo) -> None:
    state = trainer.state_dict()  # collective under torchrun (gathers every rank's RNG state)
    if dist.is_main:
        save_checkpoint(folder.last, state)
        keep = trainer.cfg.train.keep_every
        if keep and trainer.step % keep == 0:
            shutil.copyfile(folder.last, folder.checkpoints / f"step_{trainer.step:07d}.pt")
        _save_generator(trainer, folder)


def plot_curves(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """``curves.png``: the mean losses and the evaluation metrics against the step (matplotlib's Agg canvas,
    without pyplot, so the caller's matplotlib backend and figures are left alone)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not rows:
        return
    steps = [r["step"] for r in rows]
    fig = Figure(figsize=(9, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    for key in ("loss_d", "loss_g", "loss_lab", "loss_unl"):
        if key in rows[0]:
            axes[0].plot(steps, [r.get(key, float("nan")) for r in rows], label=key)
    axes[0].set_xlabel("step")
    axes[0].set_title("losses (mean since previous evaluation)", fontsize=9)
    axes[0].legend(fontsize=7)
    skip = {
        "step",
        "wall_seconds",
        "images_per_second",
        "lr",
        "loss_d",
        "loss_g",
        "loss_lab",
        "loss_unl",
        "test_error",
    }
    for key in [k for k in rows[-1] if k not in skip and isinstance(rows[-1][k], (int, float))]:
        axes[1].plot(steps, [r.get(key, float("nan")) for r in rows], marker="o", ms=3, label=key)
    axes[1].set_xlabel("step")
    axes[1].set_title("evaluation", fontsize=9)
    axes[1].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def _tensorboard(folder: RunFolder):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # noqa: BLE001 - tensorboard is optional
        return None
    return SummaryWriter(log_dir=str(folder.root / "tensorboard"))


def _loop(
    trainer: Trainer,
    to_unit,
    folder: RunFolder,
    *,
    dist: D_.DistInfo,
    data_dir: str | None,
    device: str,
    time_budget: float | None,
    progress: bool,
) -> dict[str, Any]:
    cfg = trainer.cfg
    tc = cfg.train
    evaluator = _Evaluator(trainer, to_unit, data_dir=data_dir, device=device)
    main = dist.is_main
    bar = None
    if main and progress:
        from tqdm import tqdm

        bar = tqdm(
            total=tc.steps,
            initial=trainer.step,
            desc=cfg.preset,
            unit="step",
            dynamic_ncols=True,
            mininterval=1.0,
            file=sys.stderr,
        )
    tb = _tensorboard(folder) if main else None
    start = time.perf_counter()
    wall0 = trainer.wall_seconds
    last_eval: dict[str, float] = {}
    imgs_per_step = cfg.data.batch_size * dist.world_size
    window_t, window_steps = time.perf_counter(), 0
    stopped_early = False
    while trainer.step < tc.steps:
        losses = trainer.train_step()
        trainer.wall_seconds = wall0 + time.perf_counter() - start
        window_steps += 1
        over = time_budget is not None and trainer.wall_seconds >= time_budget * 60.0
        over = D_.broadcast_flag(over, dist)
        final = trainer.step >= tc.steps or over
        ips = imgs_per_step * window_steps / max(time.perf_counter() - window_t, 1e-9)
        if bar is not None:
            # on CUDA the step's losses are device tensors: printing them each step would wait for the GPU
            post = {
                k[5]: f"{v:.3f}"
                for k, v in losses.items()
                if k in ("loss_d", "loss_g") and isinstance(v, float)
            }
            post["img/s"] = f"{ips:.0f}"
            for key in ("test_accuracy", *evaluator.metric_names):
                if key in last_eval:
                    post[key.replace("test_accuracy", "acc")] = f"{last_eval[key]:.4g}"
            bar.set_postfix(post, refresh=False)
            bar.update(1)
        if trainer.step % tc.eval_every == 0 or final:
            last_eval = evaluator()
            row = {
                "step": trainer.step,
                **trainer.pop_mean_losses(),
                **last_eval,
                "wall_seconds": round(trainer.wall_seconds, 3),
                "images_per_second": round(ips, 1),
            }
            window_t, window_steps = time.perf_counter(), 0
            if main:
                with open(folder.metrics, "a") as f:
                    f.write(json.dumps(_finite(row)) + "\n")
                _write_samples(trainer, to_unit, folder)
                if tb is not None:
                    for k, v in row.items():
                        if k != "step" and isinstance(v, (int, float)):
                            tb.add_scalar(k, v, trainer.step)
        if trainer.step % tc.checkpoint_every == 0 or final:
            _save(trainer, folder, dist)
        if over and trainer.step < tc.steps:
            stopped_early = True
            break
    if bar is not None:
        bar.close()
    if tb is not None:
        tb.close()
    if not main:
        D_.barrier(dist)  # leave together: a rank tearing down gloo while rank 0 still writes can abort
        return {}
    rows = _read_metrics(folder.metrics)
    final_eval = rows[-1] if rows else {}
    summary: dict[str, Any] = {
        "preset": cfg.preset,
        "steps": trainer.step,
        "steps_planned": tc.steps,
        "stopped_by_time_budget": stopped_early,
        "wall_seconds": round(trainer.wall_seconds, 3),
        "world_size": dist.world_size,
        "images_per_second": round(
            cfg.data.batch_size * dist.world_size * trainer.step / max(trainer.wall_seconds, 1e-9), 1
        ),
    }
    if trainer.lab_idx is not None:
        summary["labels"] = int(len(trainer.lab_idx))
    for k, v in final_eval.items():
        if k not in ("step", "wall_seconds", "images_per_second", "lr"):
            summary[k] = v
    atomic_write_json(folder.summary, _finite(summary))
    plot_curves(rows, folder.curves, f"{cfg.preset} ({folder.root.name})")
    D_.barrier(dist)
    return summary


def _run_section(
    cfg: Config, data: TrainData, dist: D_.DistInfo, time_budget: float | None
) -> dict[str, Any]:
    return {
        "world_size": dist.world_size,
        "batch_size_per_rank": cfg.data.batch_size,
        "global_batch_size": cfg.data.batch_size * dist.world_size,
        "image_shape": list(data.image_shape),
        "num_classes": data.num_classes,
        "time_budget_minutes": time_budget,
        "torch": torch.__version__,
    }


def train(
    cfg: Config,
    out: str | Path,
    *,
    data_dir: str | None = None,
    device: str = "cpu",
    time_budget: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Start a new run of ``cfg`` in folder ``out`` (which must not hold a run yet); returns the summary."""
    dist = D_.init_from_env(device)
    try:
        folder = RunFolder(out)
        if dist.is_main and (folder.last.exists() or folder.config.exists()):
            raise UserError(
                f"{folder.root}: already holds a run; use 'improved-gan resume {folder.root}' "
                "or choose another --out"
            )
        D_.barrier(dist)
        if device.startswith("cuda") and dist.enabled:
            device = f"cuda:{dist.local_rank}"
        trainer, to_unit = build_trainer(cfg, data_dir=data_dir, device=device, dist=dist)
        _check_metrics_available(trainer, data_dir)
        if dist.is_main:
            folder.root.mkdir(parents=True, exist_ok=True)
            folder.samples.mkdir(exist_ok=True)
            folder.checkpoints.mkdir(exist_ok=True)
            atomic_write_json(
                folder.config, {**cfg.to_dict(), "run": _run_section(cfg, trainer.data, dist, time_budget)}
            )
            atomic_write_text(folder.metrics, "")
        return _loop(
            trainer,
            to_unit,
            folder,
            dist=dist,
            data_dir=data_dir,
            device=device,
            time_budget=time_budget,
            progress=progress,
        )
    finally:
        D_.shutdown(dist)


def resume(
    root: str | Path,
    *,
    data_dir: str | None = None,
    device: str = "cpu",
    time_budget: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Continue the run in ``root`` from ``checkpoints/last.pt``; the result equals an uninterrupted run."""
    dist = D_.init_from_env(device)
    try:
        folder = RunFolder(root)
        cfg, run = read_run_config(folder.root)
        state = load_checkpoint(folder.last)
        if device.startswith("cuda") and dist.enabled:
            device = f"cuda:{dist.local_rank}"
        trainer, to_unit = build_trainer(
            cfg, data_dir=data_dir, device=device, dist=dist, state=state, source=folder.last
        )
        if trainer.step >= cfg.train.steps and folder.summary.exists():
            summary = json.loads(folder.summary.read_text())
            if dist.is_main:
                print(f"{folder.root}: already finished at step {trainer.step}", file=sys.stderr)
            return summary
        _check_metrics_available(trainer, data_dir)
        if dist.is_main:
            rows = [r for r in _read_metrics(folder.metrics) if r.get("step", 0) <= trainer.step]
            atomic_write_text(folder.metrics, "".join(json.dumps(r) + "\n" for r in rows))
        if time_budget is None:
            time_budget = run.get("time_budget_minutes")
        return _loop(
            trainer,
            to_unit,
            folder,
            dist=dist,
            data_dir=data_dir,
            device=device,
            time_budget=time_budget,
            progress=progress,
        )
    finally:
        D_.shutdown(dist)


def build_trainer(
    cfg: Config,
    *,
    data_dir: str | None,
    device: str,
    dist: D_.DistInfo | None = None,
    state: dict[str, Any] | None = None,
    source: Path | None = None,
) -> tuple[Trainer, Any]:
    """Load the data and build the :class:`Trainer` of ``cfg``, restoring ``state`` (read from ``source``) if given."""
    data, to_unit = load_train_data(cfg, data_dir=data_dir, device=device)
    trainer = Trainer(cfg, data, device=device, dist=dist)
    if state is not None:
        try:
            trainer.load_state_dict(state)
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"{source}: does not match the run's configuration ({exc})") from None
    return trainer, to_unit


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
    with _own_random_numbers(trainer):
        compute_metrics(names, fake, dataset=cfg.data.dataset, data_dir=data_dir, device=str(trainer.device))
