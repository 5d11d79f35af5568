"""The schedule of a run: train step by step to ``train.steps``; evaluate, write sample grids and checkpoint on
schedule; stop on a time budget, a stop signal or a divergence (README, "Long runs on clusters").

:func:`run_schedule` is the outer loop that :func:`improved_gan.training.run.train` and
:func:`~improved_gan.training.run.resume` call once the trainer is built. Only rank 0 writes files or prints.

On CUDA, with ``train.async_checkpoints`` (the default), the periodic checkpoints (:func:`save_run_checkpoint`) are
written by a background thread (:class:`~improved_gan.training.device_options.AsyncCheckpointWriter`): the
training thread queues a copy of the state and goes on; the thread serialises it, writes each file atomically and
reads it back before the rename. A failed write is reported at the next checkpoint or at the end of the run (the
same one-line error, exit 74). The schedule waits for the write in flight before a divergence is handled, and the
checkpoint of a stop request and the run's final one are written on the training thread after that wait, so they
are complete when :func:`run_schedule` ends (and a second Ctrl-C interrupts them as it does a synchronous write).
On the CPU every checkpoint is written on the training thread (:func:`_background_writes`).
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from typing import Any

import torch

from improved_gan.errors import CheckpointError, DivergenceError, StopRequested
from improved_gan.training import distributed as D_
from improved_gan.training.checkpoint import (
    GENERATOR_FORMAT,
    atomic_write_bytes,
    atomic_write_json,
    checkpoint_bytes,
    load_checkpoint,
    save_checkpoint,
)
from improved_gan.training.device_options import AsyncCheckpointWriter
from improved_gan.training.evaluation import _Evaluator
from improved_gan.training.lifecycle import agree_after_step
from improved_gan.training.run_folder import (
    RunFolder,
    append_metrics,
    plot_curves,
    read_metrics,
    write_samples,
    write_summary,
)
from improved_gan.training.trainer import Trainer

_NOT_IN_SUMMARY = ("step", "wall_seconds", "images_per_second", "lr")


def run_schedule(
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
    """Train to ``cfg.train.steps``; evaluate, write samples and checkpoint on schedule; return the summary
    (``{}`` on ranks other than 0).

    After each step, one decision shared by every rank (:func:`~improved_gan.training.lifecycle.agree_after_step`):
    the time budget (minutes of training, the run's total) is over, a stop signal arrived, or (on the CPU, where
    the step's losses are already host floats) a loss was not finite. On CUDA divergence is read only at
    evaluations and checkpoints, so the check adds no host synchronisation per step. A diverged run is never
    saved (:class:`DivergenceError`). A stop request writes a checkpoint at the step reached and raises
    :class:`StopRequested`. With ``train.async_checkpoints`` on CUDA rank 0 writes the periodic checkpoints from
    a background thread and waits for it before a divergence, a stop's checkpoint and the final one."""
    writer = AsyncCheckpointWriter() if dist.is_main and _background_writes(trainer) else None
    try:
        return _schedule(
            trainer, to_unit, folder, dist, writer, data_dir=data_dir, device=device,
            time_budget=time_budget, progress=progress,
        )  # fmt: skip
    except BaseException:
        if writer is not None:  # let the write in flight end (no temporary file left); the error in hand wins
            with contextlib.suppress(Exception):
                writer.close()
        raise


def _schedule(
    trainer: Trainer,
    to_unit,
    folder: RunFolder,
    dist: D_.DistInfo,
    writer: AsyncCheckpointWriter | None,
    *,
    data_dir: str | None,
    device: str,
    time_budget: float | None,
    progress: bool,
) -> dict[str, Any]:
    cfg, tc, main = trainer.cfg, trainer.cfg.train, dist.is_main
    evaluator = _Evaluator(trainer, to_unit, data_dir=data_dir, device=device)
    check_every_step = _check_every_step(trainer)
    bar = _progress_bar(trainer) if main and progress else None
    tb = _tensorboard(folder) if main else None
    start, wall0 = time.perf_counter(), trainer.wall_seconds
    last_eval: dict[str, float] = {}
    imgs_per_step = cfg.data.batch_size  # the global batch, whatever the number of processes
    window_t, window_steps = time.perf_counter(), 0
    stopped_early = False
    # a learning-rate decay anneals over the budget (Trainer.progress); the clock it reads is agreed over ranks
    trainer.time_budget_seconds = time_budget * 60.0 if time_budget is not None else None
    while trainer.step < tc.steps:
        losses = trainer.train_step()
        wall_us = round((wall0 + time.perf_counter() - start) * 1e6)
        window_steps += 1
        over = time_budget is not None and wall_us >= time_budget * 60e6
        div = trainer.divergence() if check_every_step else None
        over, signum, div_step, wall_us = agree_after_step(over, div[0] if div else 0, wall_us, dist)
        trainer.wall_seconds = wall_us / 1e6
        stop = signum if trainer.step < tc.steps else 0
        final = trainer.step >= tc.steps or (over and not stop)
        ips = imgs_per_step * window_steps / max(time.perf_counter() - window_t, 1e-9)
        if bar is not None:
            _show_progress(bar, losses, ips, last_eval, evaluator.metric_names)
        do_eval = trainer.step % tc.eval_every == 0 or final
        do_save = trainer.step % tc.checkpoint_every == 0 or final or bool(stop)
        if not div_step and (do_eval or do_save):
            if not check_every_step:  # one read of the device-side record, then agree over ranks
                div = trainer.divergence()
                div_step = D_.all_max([div[0] if div else 0], dist)[0]
            if not div_step and not _params_finite(trainer):
                div_step = trainer.step
        if div_step:
            _close(bar, tb)
            _wait(writer)  # _diverged reads the last checkpoint written
            _diverged(trainer, folder, dist, div_step)
        if do_eval:
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
                append_metrics(folder, row)
                write_samples(trainer, to_unit, folder)
                if tb is not None:
                    for k, v in row.items():
                        if k != "step" and isinstance(v, (int, float)):
                            tb.add_scalar(k, v, trainer.step)
        if do_save:
            if final or stop:  # the run ends here: wait for the write in flight, then write this one here
                _wait(writer)
            save_run_checkpoint(trainer, folder, dist, writer=None if final or stop else writer)
        if stop:
            _close(bar, tb)
            D_.barrier(dist)
            raise StopRequested(stop, trainer.step, str(folder.root))
        if over and trainer.step < tc.steps:
            stopped_early = True
            break
    _close(bar, tb)
    if not main:
        D_.barrier(dist)  # leave together: a rank tearing down gloo while rank 0 still writes can abort
        return {}
    if writer is not None:
        writer.close()  # nothing in flight: the final checkpoint was written after a wait
    summary = _finish(trainer, folder, dist, stopped_early)
    D_.barrier(dist)
    return summary


def _finish(trainer: Trainer, folder: RunFolder, dist: D_.DistInfo, stopped_early: bool) -> dict[str, Any]:
    """``summary.json`` (the run's outcome and its last evaluation) and ``curves.png``; returns the summary."""
    cfg = trainer.cfg
    rows = read_metrics(folder.metrics)
    summary: dict[str, Any] = {
        "preset": cfg.preset,
        "status": "stopped_by_time_budget" if stopped_early else "finished",
        "steps": trainer.step,
        "steps_planned": cfg.train.steps,
        "stopped_by_time_budget": stopped_early,
        "wall_seconds": round(trainer.wall_seconds, 3),
        "world_size": dist.world_size,
        "images_per_second": round(cfg.data.batch_size * trainer.step / max(trainer.wall_seconds, 1e-9), 1),
    }
    if trainer.lab_idx is not None:
        summary["labels"] = int(len(trainer.lab_idx))
    summary.update({k: v for k, v in (rows[-1] if rows else {}).items() if k not in _NOT_IN_SUMMARY})
    write_summary(folder, summary)
    plot_curves(rows, folder.curves, f"{cfg.preset} ({folder.root.name})")
    return summary


def save_run_checkpoint(
    trainer: Trainer, folder: RunFolder, dist: D_.DistInfo, *, writer: AsyncCheckpointWriter | None = None
) -> None:
    """``checkpoints/last.pt`` (plus a ``keep_every`` copy, written atomically too) and ``generator.pt``.

    The VBN reference statistics are refreshed for the current weights first (on every rank, so ranks stay
    identical): a step's reference pass precedes its generator update, so ``generator.pt`` would otherwise hold
    statistics one update old. Saved tensors are on the CPU.

    ``writer`` (rank 0): the files are written by its background thread, in the same order and with the same
    bytes; this call only copies the state (and first raises the error of the previous write, if it failed).
    Without it they are written here."""
    trainer.refresh_vbn_reference()
    state = trainer.state_dict()  # collective under torchrun (gathers every rank's RNG state)
    if not dist.is_main:
        return
    keep = trainer.cfg.train.keep_every
    copy = folder.checkpoints / f"step_{trainer.step:07d}.pt" if keep and trainer.step % keep == 0 else None
    generator = {"step": trainer.step, "G": trainer.G.state_dict(), "config": trainer.cfg.to_json()}
    if writer is not None:
        writer.submit_group(
            [
                (state, (folder.last,) if copy is None else (folder.last, copy), checkpoint_bytes),
                (generator, (folder.generator,), functools.partial(checkpoint_bytes, fmt=GENERATOR_FORMAT)),
            ]
        )
        return
    data = save_checkpoint(folder.last, state)
    if copy is not None:
        atomic_write_bytes(copy, data)
    save_checkpoint(folder.generator, generator, fmt=GENERATOR_FORMAT)


def _background_writes(trainer: Trainer) -> bool:
    """Write the periodic checkpoints from a background thread? With ``train.async_checkpoints`` on CUDA, where a
    synchronous write leaves the GPU idle. Not on the CPU, which trains and would also serialise: the training
    thread writes there, so what is on disk after each step is what it was (README, "Long runs on clusters")."""
    return trainer.cfg.train.async_checkpoints and trainer.device.type == "cuda"


def _wait(writer: AsyncCheckpointWriter | None) -> None:
    """Wait for the checkpoint write in flight (raising its error, if it failed)."""
    if writer is not None:
        writer.wait()


# ------------------------------------------------------------------------------------------------ divergence
def _check_every_step(trainer: Trainer) -> bool:
    """Read the divergence record after every step? On the CPU (the losses are host floats already); not on CUDA,
    where reading them would synchronise the host with the device once per step."""
    return trainer.device.type == "cpu"


def _params_finite(trainer: Trainer) -> bool:
    """All weights of G and D finite: one device reduction, read once (at a checkpoint or evaluation only)."""
    flags = [torch.isfinite(p).all() for p in (*trainer.G.parameters(), *trainer.D.parameters())]
    return bool(torch.stack(flags).all().item())


def _diverged(trainer: Trainer, folder: RunFolder, dist: D_.DistInfo, step: int) -> None:
    """Stop a run whose loss (or weights) became non-finite at ``step``: nothing of that state is saved;
    rank 0 writes ``summary.json`` with ``status: diverged``; every rank raises :class:`DivergenceError`."""
    div = trainer.divergence()
    if div is not None:
        step, what = div[0], f"{div[1]} = {div[2]}"
    elif step == trainer.step:
        what = "non-finite weights"
    else:
        what = "a non-finite loss on another process"
    saved = None
    if dist.is_main and folder.last.is_file():
        try:
            saved = int(load_checkpoint(folder.last, required=("step",))["step"])
        except CheckpointError:
            saved = None
    where = (
        f"{folder.last} holds step {saved}, the last finite state"
        if saved is not None
        else "no checkpoint was written"
    )
    msg = (
        f"{folder.root}: training diverged at step {step} ({what}); {where}; "
        "lower optim.lr or change the configuration and start a new run"
    )
    if dist.is_main:
        summary = {
            "preset": trainer.cfg.preset,
            "status": "diverged",
            "diverged": {"step": step, "what": what},
            "steps": saved or 0,
            "steps_planned": trainer.cfg.train.steps,
            "stopped_by_time_budget": False,
            "world_size": dist.world_size,
        }
        atomic_write_json(folder.summary, summary)
    D_.barrier(dist)
    err = DivergenceError(msg)
    err.quiet = not dist.is_main
    raise err


# ---------------------------------------------------------------------------------- progress bar, tensorboard
def _progress_bar(trainer: Trainer):
    from tqdm import tqdm

    return tqdm(
        total=trainer.cfg.train.steps,
        initial=trainer.step,
        desc=trainer.cfg.preset,
        unit="step",
        dynamic_ncols=True,
        mininterval=1.0,
        file=sys.stderr,
    )


def _show_progress(
    bar, losses: dict[str, Any], ips: float, last_eval: dict[str, float], metric_names
) -> None:
    # on CUDA the step's losses are device tensors: printing them each step would wait for the GPU
    post = {k[5]: f"{v:.3f}" for k, v in losses.items() if k in ("loss_d", "loss_g") and isinstance(v, float)}
    post["img/s"] = f"{ips:.0f}"
    for key in ("test_accuracy", *metric_names):
        if key in last_eval:
            post[key.replace("test_accuracy", "acc")] = f"{last_eval[key]:.4g}"
    bar.set_postfix(post, refresh=False)
    bar.update(1)


def _tensorboard(folder: RunFolder):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # noqa: BLE001 - tensorboard is optional
        return None
    return SummaryWriter(log_dir=str(folder.root / "tensorboard"))


def _close(bar, tb) -> None:
    if bar is not None:
        bar.close()
    if tb is not None:
        tb.close()
