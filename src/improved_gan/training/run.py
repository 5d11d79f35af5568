"""A training run and its folder: ``config.json``, ``metrics.jsonl``, ``summary.json``, ``samples/``,
``checkpoints/last.pt``, ``generator.pt``, ``curves.png`` (README, "A run folder").

:func:`train` starts a run, :func:`resume` continues one from ``checkpoints/last.pt``; both call :func:`_loop`,
which owns the schedule of evaluations, sample grids and checkpoints. Only rank 0 writes files or prints.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

from improved_gan.data import is_toy, load_dataset, load_toy
from improved_gan.errors import (
    CheckpointError,
    ConfigError,
    DivergenceError,
    RunInUseError,
    StopRequested,
    UserError,
)
from improved_gan.training import distributed as D_
from improved_gan.training.checkpoint import (
    GENERATOR_FORMAT,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    load_checkpoint,
    save_checkpoint,
    storage_error,
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
        from improved_gan.training.evaluate import run_metric_names

        self.metric_names: tuple[str, ...] = run_metric_names(cfg) or ()

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


def _save(trainer: Trainer, folder: RunFolder, dist: D_.DistInfo) -> None:
    """``checkpoints/last.pt`` (plus a ``keep_every`` copy, written atomically too) and ``generator.pt``.

    The VBN reference statistics are refreshed for the current weights first (on every rank, so ranks stay
    identical): a step's reference pass precedes its generator update, so ``generator.pt`` would otherwise hold
    statistics one update old. Saved tensors are on the CPU."""
    trainer.refresh_vbn_reference()
    state = trainer.state_dict()  # collective under torchrun (gathers every rank's RNG state)
    if dist.is_main:
        data = save_checkpoint(folder.last, state)
        keep = trainer.cfg.train.keep_every
        if keep and trainer.step % keep == 0:
            atomic_write_bytes(folder.checkpoints / f"step_{trainer.step:07d}.pt", data)
        save_checkpoint(
            folder.generator,
            {"step": trainer.step, "G": trainer.G.state_dict(), "config": trainer.cfg.to_json()},
            fmt=GENERATOR_FORMAT,
        )


def _append_metrics(folder: RunFolder, row: dict[str, Any]) -> None:
    try:
        with open(folder.metrics, "a") as f:
            f.write(json.dumps(_finite(row)) + "\n")
    except OSError as exc:
        raise storage_error(folder.metrics, exc) from None


# ------------------------------------------------------------------------------------------- stop requests
STOP_SIGNALS = tuple(
    s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGUSR1", None)) if s is not None
)


class _StopState:
    signum = 0  # the first stop signal received (0: none)
    depth = 0  # nesting of stop_requests() (ablate around train/resume)


_stop = _StopState()


def stop_requested() -> int:
    """The number of the first stop signal received inside :func:`stop_requests`, or 0."""
    return _stop.signum


def _handle_stop(signum, frame) -> None:
    """Set the flag only: the loop stops at the next step boundary (never in the middle of a step). A repeated
    SIGINT of a single process aborts at once (the previous checkpoint stays intact: files are replaced
    atomically); under torchrun repeats are ignored, as the agent forwards the signal it received itself."""
    if _stop.signum and signum == signal.SIGINT and int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        raise KeyboardInterrupt
    if not _stop.signum:
        _stop.signum = signum


@contextlib.contextmanager
def stop_requests():
    """Within this context SIGINT, SIGTERM and SIGUSR1 request a stop (:func:`stop_requested`) instead of
    killing the process; the previous handlers come back on exit. The outermost context installs the handlers
    and clears the flag; in a thread other than the main one it does nothing (Python delivers signals there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _stop.depth:
        _stop.depth += 1
        try:
            yield
        finally:
            _stop.depth -= 1
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    _stop.signum, _stop.depth = 0, 1
    for s in STOP_SIGNALS:
        signal.signal(s, _handle_stop)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        _stop.depth = 0


# ------------------------------------------------------------------------------------------------- the lock
class RunLock:
    """One writer per run folder: an exclusive, non-blocking ``fcntl.flock`` on ``DIR/.lock``.

    The kernel drops the lock when its holder exits, however it dies (SIGKILL included), so a killed run never
    leaves the folder locked. The file keeps the holder's process id for the error message."""

    def __init__(self, root: Path):
        self.path = Path(root) / ".lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise storage_error(self.path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise RunInUseError(
                f"{self.path.parent}: in use by another improved-gan process (pid {holder}); "
                "wait for it to finish or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


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


def _check_every_step(trainer: Trainer) -> bool:
    """Read the divergence record after every step? On the CPU (the losses are host floats already); not on CUDA,
    where reading them would synchronise the host with the device once per step."""
    return trainer.device.type == "cpu"


def _params_finite(trainer: Trainer) -> bool:
    """All weights of G and D finite: one device reduction, read once (at a checkpoint or evaluation only)."""
    flags = [torch.isfinite(p).all() for p in (*trainer.G.parameters(), *trainer.D.parameters())]
    return bool(torch.stack(flags).all().item())


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
    """Train to ``cfg.train.steps``; evaluate, write samples and checkpoint on schedule.

    Per step, one decision shared by every rank (a single all-reduce under torchrun): the time budget is over, a
    stop signal arrived (:func:`stop_requests`), or (on the CPU, where the step's losses are already host floats)
    a loss was not finite. On CUDA divergence is read only at evaluations and checkpoints, so the check adds no
    host synchronisation per step. A diverged run is never saved: :class:`DivergenceError` (README, "Long runs on
    clusters"). A stop request writes a checkpoint at the step reached and raises :class:`StopRequested`.
    """
    cfg = trainer.cfg
    tc = cfg.train
    evaluator = _Evaluator(trainer, to_unit, data_dir=data_dir, device=device)
    main = dist.is_main
    check_every_step = _check_every_step(trainer)
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
    # a learning-rate decay anneals over the budget (Trainer.progress); the clock it reads is agreed over ranks
    trainer.time_budget_seconds = time_budget * 60.0 if time_budget is not None else None
    while trainer.step < tc.steps:
        losses = trainer.train_step()
        wall_us = round((wall0 + time.perf_counter() - start) * 1e6)
        window_steps += 1
        over = time_budget is not None and wall_us >= time_budget * 60e6
        div = trainer.divergence() if check_every_step else None
        # one collective: the stop decision and the run's clock (the slowest rank's), so that every rank's
        # next learning rate, computed from the clock under a time budget, is the same
        over, signum, div_step, wall_us = D_.all_max(
            [int(over), stop_requested(), div[0] if div else 0, wall_us], dist
        )
        trainer.wall_seconds = wall_us / 1e6
        stop = signum if trainer.step < tc.steps else 0
        final = trainer.step >= tc.steps or (bool(over) and not stop)
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
                _append_metrics(folder, row)
                _write_samples(trainer, to_unit, folder)
                if tb is not None:
                    for k, v in row.items():
                        if k != "step" and isinstance(v, (int, float)):
                            tb.add_scalar(k, v, trainer.step)
        if do_save:
            _save(trainer, folder, dist)
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
    rows = _read_metrics(folder.metrics)
    final_eval = rows[-1] if rows else {}
    summary: dict[str, Any] = {
        "preset": cfg.preset,
        "status": "stopped_by_time_budget" if stopped_early else "finished",
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


def _close(bar, tb) -> None:
    if bar is not None:
        bar.close()
    if tb is not None:
        tb.close()


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
    if folder.last.is_file():
        try:
            saved = int(load_checkpoint(folder.last)["step"]) if dist.is_main else None
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
    auto_resume: bool = False,
) -> dict[str, Any]:
    """Start a new run of ``cfg`` in folder ``out``; returns the summary.

    ``out`` must not hold a run yet, unless ``auto_resume``: then a folder holding a run of the same
    configuration (:func:`config_differences` empty) is continued as :func:`resume` would, with
    ``time_budget`` as a NEW budget from now; a folder of another configuration is refused (ConfigError naming
    the first differing keys). Raises :class:`StopRequested` after a stop signal (checkpoint written),
    :class:`DivergenceError` when a loss becomes non-finite, :class:`RunInUseError` when a live process holds the
    folder (README, "Long runs on clusters")."""
    dist = D_.init_from_env(device)
    folder = RunFolder(out)
    lock = RunLock(folder.root)
    try:
        with stop_requests():

            def decide() -> str:
                lock.acquire()
                if not (folder.last.exists() or folder.config.exists()):
                    return "start"
                if not auto_resume:
                    raise UserError(
                        f"{folder.root}: already holds a run; use 'improved-gan resume {folder.root}', "
                        "--auto-resume, or another --out"
                    )
                stored, _run = read_run_config(folder.root)
                diff = config_differences(stored, cfg)
                if diff:
                    shown = "; ".join(f"{k}: {a!r} in the folder, {b!r} now" for k, a, b in diff[:3])
                    more = f" (and {len(diff) - 3} more)" if len(diff) > 3 else ""
                    raise ConfigError(
                        f"{folder.root}: holds a run of another configuration ({shown}{more}); "
                        "choose another --out or the same settings"
                    )
                return "resume" if folder.last.exists() else "start"

            action = D_.rank0_decides(decide, dist)
            if action == "resume":
                return _continue(
                    folder,
                    dist,
                    data_dir=data_dir,
                    device=device,
                    time_budget=time_budget,
                    progress=progress,
                    new_budget=True,
                )
            device = _rank_device(device, dist)
            trainer, to_unit = build_trainer(cfg, data_dir=data_dir, device=device, dist=dist)
            _check_metrics_available(trainer, data_dir)
            if dist.is_main:
                folder.root.mkdir(parents=True, exist_ok=True)
                folder.samples.mkdir(exist_ok=True)
                folder.checkpoints.mkdir(exist_ok=True)
                atomic_write_json(
                    folder.config,
                    {**cfg.to_dict(), "run": _run_section(cfg, trainer.data, dist, time_budget)},
                )
                atomic_write_text(folder.metrics, "")
                if folder.summary.exists():
                    folder.summary.unlink()
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
        lock.release()
        D_.shutdown(dist)


def config_differences(a: Config, b: Config) -> list[tuple[str, Any, Any]]:
    """``(dotted key, value in a, value in b)`` for every field where two configurations differ, in field order.

    Every field counts (the seed, the number of steps, the checkpoint schedule, ...): a run continued by
    ``--auto-resume`` is exactly the run the command asks for. The ``run`` section of ``config.json`` (world
    size, time budget, torch version) is not part of the configuration."""
    out: list[tuple[str, Any, Any]] = []

    def walk(x: Any, y: Any, prefix: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in list(x) + [k for k in y if k not in x]:
                walk(x.get(k), y.get(k), f"{prefix}{k}" if not prefix else f"{prefix}.{k}")
        elif x != y:
            out.append((prefix, x, y))

    walk(json.loads(json.dumps(a.to_dict())), json.loads(json.dumps(b.to_dict())), "")
    return out


def resume(
    root: str | Path,
    *,
    data_dir: str | None = None,
    device: str = "cpu",
    time_budget: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Continue the run in ``root`` from ``checkpoints/last.pt``; the result equals an uninterrupted run.

    A run that finished, or stopped on its time budget, is left as it is (its summary is returned) unless
    ``time_budget`` is given: that many more minutes of training from now. Without it, a run stopped by a signal
    or a crash continues under the budget it was started with (total training time)."""
    dist = D_.init_from_env(device)
    folder = RunFolder(root)
    lock = RunLock(folder.root)
    try:
        with stop_requests():

            def take() -> None:
                read_run_config(folder.root)  # "not a run folder" before creating a lock file in it
                lock.acquire()

            D_.rank0_decides(take, dist)
            return _continue(
                folder,
                dist,
                data_dir=data_dir,
                device=device,
                time_budget=time_budget,
                progress=progress,
                new_budget=time_budget is not None,
            )
    finally:
        lock.release()
        D_.shutdown(dist)


def _continue(
    folder: RunFolder,
    dist: D_.DistInfo,
    *,
    data_dir: str | None,
    device: str,
    time_budget: float | None,
    progress: bool,
    new_budget: bool,
) -> dict[str, Any]:
    cfg, run = read_run_config(folder.root)
    summary = _read_summary(folder)
    if summary.get("status") == "diverged":
        d = summary.get("diverged", {})
        raise DivergenceError(
            f"{folder.root}: this run diverged at step {d.get('step')} ({d.get('what')}); it cannot be "
            "continued: start a new run with other settings (e.g. a lower optim.lr)"
        )
    state = load_checkpoint(folder.last)
    device = _rank_device(device, dist)
    trainer, to_unit = build_trainer(
        cfg, data_dir=data_dir, device=device, dist=dist, state=state, source=folder.last
    )
    budget_spent = summary.get("stopped_by_time_budget") and summary.get("steps") == trainer.step
    if summary and (trainer.step >= cfg.train.steps or (budget_spent and not new_budget)):
        if dist.is_main:
            how = "stopped on its time budget" if trainer.step < cfg.train.steps else "already finished"
            hint = "; give --time-budget MINUTES to train longer" if trainer.step < cfg.train.steps else ""
            print(f"{folder.root}: {how} at step {trainer.step} of {cfg.train.steps}{hint}", file=sys.stderr)
        D_.barrier(dist)
        return summary if dist.is_main else {}
    _check_metrics_available(trainer, data_dir)
    if new_budget and time_budget is not None:
        time_budget = trainer.wall_seconds / 60.0 + time_budget  # the run's total: spent + the new minutes
    elif new_budget:
        time_budget = None
    else:
        time_budget = run.get("time_budget_minutes")
    if dist.is_main:
        rows = [r for r in _read_metrics(folder.metrics) if r.get("step", 0) <= trainer.step]
        atomic_write_text(folder.metrics, "".join(json.dumps(r) + "\n" for r in rows))
        if new_budget:
            raw = json.loads(folder.config.read_text())
            raw["run"]["time_budget_minutes"] = time_budget
            atomic_write_json(folder.config, raw)
        if folder.summary.exists():  # the run is not finished any more
            folder.summary.unlink()
    D_.barrier(dist)
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


def _rank_device(device: str, dist: D_.DistInfo) -> str:
    """Under torchrun each process trains on its own GPU: ``cuda`` -> ``cuda:LOCAL_RANK``."""
    return f"cuda:{dist.local_rank}" if device.startswith("cuda") and dist.enabled else device


def _read_summary(folder: RunFolder) -> dict[str, Any]:
    if not folder.summary.is_file():
        return {}
    try:
        out = json.loads(folder.summary.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return out if isinstance(out, dict) else {}


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
    (``restore_rng=False``: the weights only, for evaluation, whatever the number of processes that trained)."""
    data, to_unit = load_train_data(cfg, data_dir=data_dir, device=device)
    trainer = Trainer(cfg, data, device=device, dist=dist)
    if state is not None:
        try:
            trainer.load_state_dict(state, restore_rng=restore_rng)
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
    """Fail before training, not at the first evaluation, when a metric is unknown or its network, weights or
    reference data are missing (:func:`improved_gan.metrics.suite.check_available`; the networks stay cached)."""
    from improved_gan.metrics.suite import check_available
    from improved_gan.training.evaluate import run_metric_names

    names = run_metric_names(trainer.cfg)
    if names:
        with _own_random_numbers(trainer):
            check_available(names, trainer.cfg.data.dataset, device=str(trainer.device), data_dir=data_dir)
