"""Start, continue and auto-resume a training run (README, "A run folder" and "Long runs on clusters").

:func:`train` starts a run of a configuration in a new folder (or, with ``auto_resume``, continues the run of the
same configuration found there); :func:`resume` continues a run from ``checkpoints/last.pt``. Both build the
trainer (:mod:`.build`) and hand it to the schedule (:func:`.schedule.run_schedule`). The other parts of a run
live beside this module: the folder's files in :mod:`.run_folder`, signals and the lock in :mod:`.lifecycle`,
periodic evaluation in :mod:`.evaluation`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Literal

import torch

from improved_gan.errors import CheckpointError, ConfigError, DivergenceError, UserError
from improved_gan.training import distributed as D_
from improved_gan.training.batching import per_rank_batch

# kept importable from here: the names callers used before the run's parts moved to their own modules
from improved_gan.training.build import build_trainer, load_train_data  # noqa: F401
from improved_gan.training.checkpoint import load_checkpoint
from improved_gan.training.config import Config
from improved_gan.training.evaluation import _check_metrics_available
from improved_gan.training.lifecycle import (  # noqa: F401
    RunLock,
    rank0_decides,
    rank_device,
    run_session,
    stop_requested,
    stop_requests,
)
from improved_gan.training.run_folder import (  # noqa: F401
    SAMPLE_SEED,
    RunFolder,
    keep_metrics_through,
    plot_curves,
    read_run_config,
    read_summary,
    set_time_budget,
    start_folder,
)
from improved_gan.training.run_folder import json_safe as _finite  # noqa: F401
from improved_gan.training.schedule import run_schedule
from improved_gan.training.trainer import TrainData

#: how :func:`resume` reads its ``time_budget``: that many more minutes from now, or the run's whole budget
BudgetMode = Literal["more", "total"]


def train(
    cfg: Config,
    out: str | Path,
    *,
    data_dir: str | None = None,
    device: str = "cpu",
    time_budget: float | None = None,
    progress: bool = True,
    auto_resume: bool = False,
) -> dict[str, Any]:
    """Start a new run of ``cfg`` in folder ``out``; returns the summary.

    ``time_budget`` (minutes of training; default: the configuration's ``train.time_budget_minutes`` where it
    has one) stops the run at the first step past it. ``out`` must not hold a run yet, unless ``auto_resume``:
    then a folder holding a run of the same configuration (:func:`config_differences` empty) is continued as
    :func:`resume` would, with ``time_budget`` as a NEW budget from now; a folder of another configuration is
    refused (ConfigError naming the first differing keys). Raises :class:`StopRequested` after a stop signal
    (checkpoint written), :class:`DivergenceError` when a loss becomes non-finite, :class:`RunInUseError` when a
    live process holds the folder (README, "Long runs on clusters")."""
    if time_budget is None:
        time_budget = cfg.train.time_budget_minutes
    elif time_budget != cfg.train.time_budget_minutes:  # the budget is saved with the run's configuration
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, time_budget_minutes=time_budget))
    folder = RunFolder(out)
    with run_session(folder.root, device) as (dist, lock):

        def decide() -> str:
            lock.acquire()
            if not (folder.last.exists() or folder.config.exists()):
                return "start"
            if not auto_resume:
                raise UserError(
                    f"{folder.root}: already holds a run; use 'improved-gan resume {folder.root}', "
                    "--auto-resume, or another --out"
                )
            _refuse_another_configuration(folder, cfg)
            return "resume" if folder.last.exists() else "start"

        if rank0_decides(decide, dist) == "resume":
            return _continue(
                folder,
                dist,
                data_dir=data_dir,
                device=device,
                progress=progress,
                budget=("more", time_budget),
            )
        device = rank_device(device, dist)
        trainer, to_unit = build_trainer(cfg, data_dir=data_dir, device=device, dist=dist)
        _check_metrics_available(trainer, data_dir)
        if dist.is_main:
            start_folder(folder, cfg, _run_section(cfg, trainer.data, dist, time_budget))
        return run_schedule(
            trainer,
            to_unit,
            folder,
            dist=dist,
            data_dir=data_dir,
            device=device,
            time_budget=time_budget,
            progress=progress,
        )


def resume(
    root: str | Path,
    *,
    data_dir: str | None = None,
    device: str = "cpu",
    time_budget: float | None = None,
    budget: BudgetMode = "more",
    progress: bool = True,
) -> dict[str, Any]:
    """Continue the run in ``root`` from ``checkpoints/last.pt``; the result equals an uninterrupted run.

    Without ``time_budget``, a run stopped by a signal or a crash continues under the budget it was started
    with (the run's total training time, the minutes already trained included), and a run that finished or
    stopped on its time budget is left as it is (its summary is returned). With ``time_budget`` and
    ``budget="more"`` (the command line's ``--time-budget``): that many more minutes of training from now, also
    for a run that stopped on its budget. With ``budget="total"`` (what ``ablate`` passes): ``time_budget`` is
    the run's whole budget, so an interrupted run trains only what is left of it. Prints one line on stderr,
    ``resuming DIR from step N (checkpoints/last.pt)``, before it trains."""
    if budget not in ("more", "total"):
        raise ValueError(f"budget: expected 'more' or 'total', got {budget!r}")
    folder = RunFolder(root)
    with run_session(folder.root, device) as (dist, lock):

        def take() -> None:
            read_run_config(folder.root)  # "not a run folder" before creating a lock file in it
            lock.acquire()

        rank0_decides(take, dist)
        change = (budget, time_budget) if time_budget is not None else None
        return _continue(folder, dist, data_dir=data_dir, device=device, progress=progress, budget=change)


def _continue(
    folder: RunFolder,
    dist: D_.DistInfo,
    *,
    data_dir: str | None,
    device: str,
    progress: bool,
    budget: tuple[BudgetMode, float | None] | None,
) -> dict[str, Any]:
    """Continue the run of ``folder`` (the lock is held). ``budget``: ``None`` keeps the run's own time budget;
    ``("more", m)`` gives ``m`` more minutes from now (``m=None``: no budget); ``("total", m)`` makes ``m`` the
    run's whole budget."""
    cfg, run = read_run_config(folder.root)
    summary = read_summary(folder)
    if summary.get("status") == "diverged":
        d = summary.get("diverged", {})
        err = DivergenceError(
            f"{folder.root}: this run diverged at step {d.get('step')} ({d.get('what')}); it cannot be "
            "continued: start a new run with other settings (e.g. a lower optim.lr)"
        )
        err.quiet = not dist.is_main  # every rank read the same summary: rank 0 alone reports it
        raise err
    _refuse_per_process_batch(folder, cfg, run, dist)
    device = rank_device(device, dist)
    try:
        trainer, to_unit = build_trainer(
            cfg,
            data_dir=data_dir,
            device=device,
            dist=dist,
            state=load_checkpoint(folder.last, required=("step", "wall_seconds")),
            source=folder.last,
        )
    except CheckpointError as exc:
        exc.quiet = not dist.is_main  # every rank read the same file: rank 0 alone reports it
        raise
    stored = run.get("time_budget_minutes")
    total = _total_budget(budget, stored, spent_minutes=trainer.wall_seconds / 60.0)
    budget_spent = summary.get("stopped_by_time_budget") and summary.get("steps") == trainer.step
    if summary and (trainer.step >= cfg.train.steps or (budget_spent and total == stored)):
        if dist.is_main:
            how = "stopped on its time budget" if trainer.step < cfg.train.steps else "already finished"
            hint = "; give --time-budget MINUTES to train longer" if trainer.step < cfg.train.steps else ""
            print(f"{folder.root}: {how} at step {trainer.step} of {cfg.train.steps}{hint}", file=sys.stderr)
        D_.barrier(dist)
        return summary if dist.is_main else {}
    _check_metrics_available(trainer, data_dir)
    if dist.is_main:
        print(f"resuming {folder.root} from step {trainer.step} (checkpoints/last.pt)", file=sys.stderr)
        keep_metrics_through(folder, trainer.step)
        if total != stored:
            set_time_budget(folder, total)
        if folder.summary.exists():  # the run is not finished any more
            folder.summary.unlink()
    D_.barrier(dist)
    return run_schedule(
        trainer,
        to_unit,
        folder,
        dist=dist,
        data_dir=data_dir,
        device=device,
        time_budget=total,
        progress=progress,
    )


def _refuse_per_process_batch(folder: RunFolder, cfg: Config, run: dict[str, Any], dist: D_.DistInfo) -> None:
    """A run started when ``data.batch_size`` was the batch of each process (its ``config.json`` records a global
    batch other than ``data.batch_size``) would continue with another batch: refused, with one line."""
    recorded = run.get("global_batch_size")
    if recorded is None or recorded == cfg.data.batch_size:
        return
    err = ConfigError(
        f"{folder.root}: this run was started with data.batch_size={cfg.data.batch_size} per process (a global "
        f"batch of {recorded}); data.batch_size is now the global batch, so it cannot be continued as it was: "
        f"start a new run (e.g. --set data.batch_size={recorded})"
    )
    err.quiet = not dist.is_main
    raise err


def _total_budget(
    budget: tuple[BudgetMode, float | None] | None, stored: float | None, *, spent_minutes: float
) -> float | None:
    """The run's total time budget in minutes (``None``: none) after a resume asked for ``budget``."""
    if budget is None:
        return stored
    mode, minutes = budget
    if minutes is None:
        return None
    return spent_minutes + minutes if mode == "more" else minutes


def _refuse_another_configuration(folder: RunFolder, cfg: Config) -> None:
    stored, _run = read_run_config(folder.root)
    diff = config_differences(stored, cfg)
    if diff:
        shown = "; ".join(f"{k}: {a!r} in the folder, {b!r} now" for k, a, b in diff[:3])
        more = f" (and {len(diff) - 3} more)" if len(diff) > 3 else ""
        raise ConfigError(
            f"{folder.root}: holds a run of another configuration ({shown}{more}); "
            "choose another --out or the same settings"
        )


def config_differences(a: Config, b: Config) -> list[tuple[str, Any, Any]]:
    """``(dotted key, value in a, value in b)`` for every field where two configurations differ, in field order.

    Every field counts (the seed, the number of steps, the checkpoint schedule, ...): a run continued by
    ``--auto-resume`` is exactly the run the command asks for, except ``train.time_budget_minutes``: a budget
    given again to a run being continued means that many more minutes (README, "Long runs on clusters"). The
    ``run`` section of ``config.json`` (world size, the run's total time budget, torch version) is not part of
    the configuration."""
    out: list[tuple[str, Any, Any]] = []

    def walk(x: Any, y: Any, prefix: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in list(x) + [k for k in y if k not in x]:
                walk(x.get(k), y.get(k), f"{prefix}{k}" if not prefix else f"{prefix}.{k}")
        elif x != y:
            out.append((prefix, x, y))

    walk(json.loads(json.dumps(a.to_dict())), json.loads(json.dumps(b.to_dict())), "")
    return [d for d in out if d[0] != "train.time_budget_minutes"]


def _run_section(
    cfg: Config, data: TrainData, dist: D_.DistInfo, time_budget: float | None
) -> dict[str, Any]:
    """The ``run`` section of ``config.json``: how this run was launched, beside the configuration.
    ``data.batch_size`` is the global batch; each rank takes ``batch_size_per_rank`` of it."""
    return {
        "world_size": dist.world_size,
        "batch_size_per_rank": per_rank_batch(cfg.data.batch_size, dist.world_size),
        "global_batch_size": cfg.data.batch_size,
        "image_shape": list(data.image_shape),
        "num_classes": data.num_classes,
        "time_budget_minutes": time_budget,
        "torch": torch.__version__,
    }
