"""Launching the runs of a sweep: N processes at once on this machine, or a SLURM job array through submitit.

Every run is the command ``python -m improved_gan train PRESET --out FOLDER --seed S --auto-resume ...``
(:func:`train_argv`), so a sweep needs nothing from the training code but its command line, and a run folder
is the whole record of a run: ``summary.json`` once it ended (finished, stopped on its time budget, or
diverged), ``checkpoints/last.pt`` while it is under way. Hence:

- a run whose folder holds a ``summary.json`` is skipped (:func:`run_state`);
- any other run is started with ``--auto-resume``, which continues a checkpointed run of the same
  configuration, so a sweep stopped at any moment (a kill, a preempted job) continues where it was when the
  same command is given again;
- a run that fails (exit status other than 0, no ``summary.json``) is recorded in ``logs/<run>.json`` with its
  exit status and the tail of its output, and the other runs go on.

:class:`LocalLauncher` keeps ``jobs`` runs going at once. On the CPU each gets ``OMP_NUM_THREADS=1`` (N runs on
N cores beat one run on N threads for these small networks); with ``device="cuda"`` run ``i`` gets GPU
``i mod G`` through ``CUDA_VISIBLE_DEVICES``. SIGINT, SIGTERM and SIGUSR1 are passed on to the runs, which
write a checkpoint and stop; no new run starts. On Linux each run also gets SIGTERM if the launcher itself dies
(``PR_SET_PDEATHSIG``), so even a killed sweep leaves checkpoints rather than orphans.

:func:`submit_slurm` submits the runs as one SLURM job array through submitit (``pip install
'improved-gan[slurm]'``): one array task per run, each running the same command. On preemption or time-out
SLURM signals the task (USR2, ``signal_delay_s`` before the end); the task passes SIGTERM to its run, waits for
its checkpoint and requeues itself, and the requeued task continues the run through ``--auto-resume``.
``cluster="local"`` runs the same path with submitit's local executor (for tests and a machine without SLURM).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from improved_gan.errors import UserError
from improved_gan.sweeps.matrix import RunSpec

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
_TAIL_CHARS = 2000


@dataclass(frozen=True)
class Budget:
    """What every run of a sweep gets: ``steps`` (``--steps``) and/or ``minutes`` (``--time-budget``), the data
    folder and the device (``cpu``, ``cuda``)."""

    steps: int | None = None
    minutes: float | None = None
    data_dir: str | None = None
    device: str = "cpu"


class SweepStopped(Exception):
    """A stop signal reached the launcher: the runs under way wrote a checkpoint; the same command continues."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def train_argv(spec: RunSpec, budget: Budget, python: str | None = None) -> list[str]:
    """The command line of one run (``python -m improved_gan train ... --auto-resume --quiet``)."""
    argv = [python or sys.executable, "-m", "improved_gan", "train", spec.preset]
    argv += ["--out", str(spec.folder), "--seed", str(spec.seed), "--auto-resume", "--quiet"]
    if budget.steps is not None:
        argv += ["--steps", str(budget.steps)]
    if budget.minutes is not None:
        argv += ["--time-budget", f"{budget.minutes:g}"]
    for item in spec.sets:
        argv += ["--set", item]
    if budget.data_dir:
        argv += ["--data-dir", str(budget.data_dir)]
    if budget.device != "cpu":
        argv += ["--device", "cuda" if budget.device.startswith("cuda") else budget.device]
    return argv


def read_summary(folder: Path) -> dict[str, Any] | None:
    """The run's ``summary.json`` as a dict, or None when it is missing or unreadable."""
    try:
        data = json.loads((Path(folder) / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def run_state(folder: Path) -> str:
    """``done`` (a ``summary.json``: finished, out of time budget or diverged), ``partial`` (a checkpoint and
    no summary: it will be resumed) or ``new``."""
    if read_summary(folder) is not None:
        return "done"
    if (Path(folder) / "checkpoints" / "last.pt").exists():
        return "partial"
    return "new"


def log_name(spec: RunSpec) -> str:
    """``ssl-100/seed1`` -> ``ssl-100__seed1`` (one flat file name per run under ``logs/``)."""
    return spec.key.replace("/", "__")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - _TAIL_CHARS))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _lock_held(folder: Path) -> bool:
    """Whether a live process holds the run folder's ``.lock`` (the training command's one-writer lock)."""
    path = Path(folder) / ".lock"
    if not path.exists():
        return False
    try:
        import fcntl
    except ImportError:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also releases the probe's lock
    return False


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        except OSError:
            pass
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # SLURM's early warning is for the job step, not the run


def child_env(slot: int, device: str, gpus: Sequence[str] = ()) -> dict[str, str]:
    """The environment of the run in launcher slot ``slot``: one thread on the CPU, one GPU on CUDA."""
    env = dict(os.environ)
    if device == "cpu":
        env["OMP_NUM_THREADS"] = "1"
        env["MKL_NUM_THREADS"] = "1"
    elif gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(gpus[slot % len(gpus)])
    return env


def visible_gpus() -> list[str]:
    """The GPU ids runs are spread over: ``CUDA_VISIBLE_DEVICES`` if set, else ``0 .. count-1``."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


@dataclass
class _Running:
    spec: RunSpec
    proc: subprocess.Popen
    started: float
    log: Path


class LocalLauncher:
    """Runs the sweep's runs ``jobs`` at a time on this machine (see the module docstring).

    ``progress`` receives one line per event (started, done, failed, skipped)."""

    def __init__(
        self,
        jobs: int = 1,
        *,
        device: str = "cpu",
        gpus: Sequence[str] | None = None,
        progress: Callable[[str], None] | None = None,
        lock_wait_s: float = 120.0,
    ):
        if jobs < 1:
            raise UserError(f"--jobs {jobs}: expected a positive integer")
        self.jobs, self.device = jobs, device
        self.gpus = list(gpus) if gpus is not None else (visible_gpus() if device != "cpu" else [])
        if device != "cpu" and not self.gpus:
            raise UserError(f"--device {device}: no GPU visible to spread the runs over")
        self.progress = progress or (lambda line: None)
        self.lock_wait_s = lock_wait_s
        self._stop = 0

    def run(self, specs: Sequence[RunSpec], budget: Budget, log_dir: Path) -> dict[str, dict[str, Any]]:
        """Run every spec not yet done; returns ``{key: launch record}`` (also in ``log_dir/<run>.json``)."""
        records: dict[str, dict[str, Any]] = {}
        pending = []
        for spec in specs:
            if run_state(spec.folder) == "done":
                records[spec.key] = {"key": spec.key, "state": "skipped (finished before)"}
            else:
                pending.append(spec)
        skipped = len(specs) - len(pending)
        if skipped:
            self.progress(f"{skipped} of {len(specs)} runs finished before: skipped")
        running: dict[int, _Running] = {}
        previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}

        def on_signal(signum, _frame):
            self._stop = self._stop or signum
            for r in running.values():
                if r.proc.poll() is None:
                    r.proc.send_signal(signal.SIGTERM if signum == signal.SIGUSR1 else signum)

        for s in STOP_SIGNALS:
            signal.signal(s, on_signal)
        try:
            while pending or running:
                for slot in [s for s in range(self.jobs) if s not in running]:
                    if not pending or self._stop:
                        break
                    spec = pending.pop(0)
                    if self._wait_for_lock(spec):
                        running[slot] = self._start(spec, slot, budget, log_dir)
                    else:
                        records[spec.key] = self._record(
                            spec,
                            log_dir,
                            None,
                            0.0,
                            "failed",
                            "the run folder stays locked by another process",
                        )
                for slot, r in list(running.items()):
                    rc = r.proc.poll()
                    if rc is None:
                        continue
                    del running[slot]
                    records[r.spec.key] = self._finish(r, rc, log_dir)
                if self._stop and not running:
                    break
                time.sleep(0.2)
        finally:
            for s, h in previous.items():
                signal.signal(s, h if h is not None else signal.SIG_DFL)
        if self._stop:
            raise SweepStopped(self._stop)
        return records

    def _wait_for_lock(self, spec: RunSpec) -> bool:
        """A run killed with its launcher may still be writing its checkpoint: wait for its lock to go."""
        deadline = time.monotonic() + self.lock_wait_s
        while _lock_held(spec.folder):
            if time.monotonic() > deadline or self._stop:
                return False
            time.sleep(0.5)
        return True

    def _start(self, spec: RunSpec, slot: int, budget: Budget, log_dir: Path) -> _Running:
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / f"{log_name(spec)}.log"
        state = run_state(spec.folder)
        argv = train_argv(spec, budget)
        with open(log, "ab") as f:
            f.write(f"$ {' '.join(argv)}\n".encode())
            proc = subprocess.Popen(
                argv,
                stdout=f,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=child_env(slot, self.device, self.gpus),
                preexec_fn=_die_with_parent,
            )
        where = f" on GPU {self.gpus[slot % len(self.gpus)]}" if self.gpus else ""
        self.progress(f"{'resumed' if state == 'partial' else 'started'} {spec.key}{where}")
        return _Running(spec, proc, time.time(), log)

    def _finish(self, r: _Running, rc: int, log_dir: Path) -> dict[str, Any]:
        summary = read_summary(r.spec.folder)
        wall = time.time() - r.started
        if rc == 0 and summary is not None:
            state = "done"
        elif summary is not None and summary.get("status") == "diverged":
            state = "diverged"
        elif self._stop:
            state = "stopped"
        else:
            state = "failed"
        rec = self._record(r.spec, log_dir, rc, wall, state, _tail(r.log) if state == "failed" else "")
        steps = f", {summary.get('steps')} steps" if summary else ""
        self.progress(f"{state} {r.spec.key} (exit {rc}, {wall:.0f} s{steps})")
        return rec

    @staticmethod
    def _record(
        spec: RunSpec, log_dir: Path, rc: int | None, wall: float, state: str, tail: str
    ) -> dict[str, Any]:
        rec = {
            "key": spec.key,
            "folder": str(spec.folder),
            "state": state,
            "exit_status": rc,
            "wall_seconds": round(wall, 1),
            "log": str(log_dir / f"{log_name(spec)}.log"),
            "ended": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        if tail:
            rec["output_tail"] = tail
        _write_json(log_dir / f"{log_name(spec)}.json", rec)
        return rec


# ----------------------------------------------------------------------------------------------------- SLURM
_CHILD: subprocess.Popen | None = None  # the run of this array task (kept out of the pickled callable)


def _checkpointable_base() -> type:
    try:
        import submitit
    except ImportError:
        return object
    return submitit.helpers.Checkpointable


class TrainTask(_checkpointable_base()):  # type: ignore[misc]
    """One array task: run ``argv`` (a :func:`train_argv` command) to its end; on preemption, stop the run at a
    checkpoint and requeue this task, which then continues the run (``--auto-resume``).

    Returns ``(exit status, summary or None)``; the launch record is written next to the local ones."""

    def __init__(self, argv: list[str], folder: str, record: str, device: str = "cpu"):
        self.argv, self.folder, self.record, self.device = argv, folder, record, device

    def __call__(self) -> tuple[int, dict[str, Any] | None]:
        global _CHILD
        if run_state(Path(self.folder)) == "done":
            return 0, read_summary(Path(self.folder))
        started = time.time()
        env = dict(os.environ)
        if self.device == "cpu":
            env.setdefault("OMP_NUM_THREADS", str(_cpus_of_task()))
        log = Path(self.record).with_suffix(".log")
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as f:
            f.write(f"$ {' '.join(self.argv)}\n".encode())
            _CHILD = subprocess.Popen(
                self.argv, stdout=f, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent
            )
        while (rc := _CHILD.poll()) is None:  # not wait(): the preemption handler polls the child too
            time.sleep(1.0)
        summary = read_summary(Path(self.folder))
        state = "done" if rc == 0 and summary else "failed"
        rec = {
            "key": Path(self.record).stem,
            "folder": self.folder,
            "state": state,
            "exit_status": rc,
            "wall_seconds": round(time.time() - started, 1),
            "log": str(log),
            "ended": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "launcher": "slurm",
        }
        if state == "failed":
            rec["output_tail"] = _tail(log)
        _write_json(Path(self.record), rec)
        return rc, summary

    def checkpoint(self, *args: Any, **kwargs: Any):
        """Called by submitit on SLURM's early-warning signal: the run writes its checkpoint, then requeue."""
        import submitit

        child = _CHILD
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 80
            while child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _cpus_of_task() -> int:
    try:
        return max(1, int(os.environ.get("SLURM_CPUS_PER_TASK", "1")))
    except ValueError:
        return 1


@dataclass(frozen=True)
class SlurmOptions:
    """What each array task asks SLURM for; ``extra`` goes to ``slurm_additional_parameters``."""

    partition: str | None = None
    time_minutes: int = 240
    gpus_per_job: int = 1
    cpus_per_job: int = 4
    mem_gb: float | None = None
    array_parallelism: int = 64
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    extra: tuple[str, ...] = ()


def submit_slurm(
    specs: Sequence[RunSpec],
    budget: Budget,
    log_dir: Path,
    options: SlurmOptions,
    *,
    cluster: str = "slurm",
    wait: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Submit the runs not yet done as one job array (``cluster="local"``: submitit's local executor).

    With ``wait`` it blocks until every task ended and returns ``{key: launch record}``; without, it returns
    the job ids at once (gather the table later with the same command and ``--gather-only``)."""
    try:
        import submitit
    except ImportError:
        raise UserError(
            "--launcher slurm needs submitit: pip install 'improved-gan[slurm]' (or pip install submitit)"
        ) from None
    say = progress or (lambda line: None)
    todo = [s for s in specs if run_state(s.folder) != "done"]
    records: dict[str, dict[str, Any]] = {
        s.key: {"key": s.key, "state": "skipped (finished before)"} for s in specs if s not in todo
    }
    if len(todo) < len(specs):
        say(f"{len(specs) - len(todo)} of {len(specs)} runs finished before: skipped")
    if not todo:
        return records
    folder = log_dir / "submitit"
    if cluster == "local":
        executor = submitit.AutoExecutor(folder=folder, cluster="local")
        executor.update_parameters(timeout_min=options.time_minutes)
    else:
        try:
            executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        except RuntimeError as exc:  # submitit: no srun/sbatch on this machine
            raise UserError(f"--launcher slurm: {exc} (run it on the cluster's login node)") from None
        params: dict[str, Any] = {
            "timeout_min": options.time_minutes,
            "slurm_array_parallelism": options.array_parallelism,
            "cpus_per_task": options.cpus_per_job,
            "tasks_per_node": 1,
            "nodes": 1,
        }
        if budget.device != "cpu" and options.gpus_per_job:
            params["gpus_per_node"] = options.gpus_per_job
        if options.partition:
            params["slurm_partition"] = options.partition
        if options.mem_gb:
            params["mem_gb"] = options.mem_gb
        additional: dict[str, Any] = {}
        for key, value in (
            ("account", options.account),
            ("qos", options.qos),
            ("constraint", options.constraint),
        ):
            if value:
                additional[key] = value
        for item in options.extra:
            if "=" not in item:
                raise UserError(f"--slurm-extra {item}: expected KEY=VALUE (an sbatch option without its --)")
            k, v = item.split("=", 1)
            additional[k.strip()] = v
        if additional:
            params["slurm_additional_parameters"] = additional
        executor.update_parameters(name="improved-gan", **params)
    tasks = [
        TrainTask(train_argv(s, budget), str(s.folder), str(log_dir / f"{log_name(s)}.json"), budget.device)
        for s in todo
    ]
    with executor.batch():
        jobs = [executor.submit(t) for t in tasks]
    ids = [j.job_id for j in jobs]
    say(f"submitted {len(jobs)} runs as job array {ids[0].split('_')[0]} ({cluster})")
    _write_json(
        log_dir / "submitted.json", {"cluster": cluster, "jobs": dict(zip([s.key for s in todo], ids))}
    )
    if not wait:
        for s, j in zip(todo, ids):
            records[s.key] = {"key": s.key, "state": "submitted", "job_id": j}
        return records
    for s, job in zip(todo, jobs):
        try:
            rc, summary = job.result()
            state = "done" if rc == 0 and summary else "failed"
            records[s.key] = {"key": s.key, "state": state, "exit_status": rc, "job_id": job.job_id}
        except Exception as exc:  # noqa: BLE001 - a failed task is recorded; the others go on
            records[s.key] = {"key": s.key, "state": "failed", "job_id": job.job_id, "error": str(exc)[-500:]}
        say(f"{records[s.key]['state']} {s.key} (job {job.job_id})")
    return records
