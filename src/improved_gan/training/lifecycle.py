"""Process concerns of a run: stop signals, the one-writer lock, and the decisions every rank must share
(README, "Long runs on clusters").

- :func:`stop_requests` turns SIGINT, SIGTERM and SIGUSR1 into a flag (:func:`stop_requested`) that the schedule
  reads at the next step boundary, so a run always stops with a checkpoint of a whole step.
- :class:`RunLock` keeps a second process from writing the same run folder.
- :func:`run_session` holds both (and the torchrun process group) around a train or resume;
  :func:`rank0_decides` runs a decision (start, continue, refuse) on rank 0 and gives every rank its outcome;
  :func:`agree_after_step` is the one collective per step that shares the stop decision and the clock.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from improved_gan.errors import RunInUseError
from improved_gan.training import distributed as D_
from improved_gan.training.checkpoint import storage_error

rank0_decides = D_.rank0_decides

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
def stop_requests() -> Iterator[None]:
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


# -------------------------------------------------------------------------------------- a run's session
@contextlib.contextmanager
def run_session(root: str | Path, device: str) -> Iterator[tuple[D_.DistInfo, RunLock]]:
    """Around a train or resume of the run folder ``root``: the torchrun process group (if launched by
    torchrun), stop requests, and the folder's lock (not taken yet: rank 0 acquires it inside its decision, so
    that a refusal reaches every rank). On exit the lock is released and the process group shut down."""
    dist = D_.init_from_env(device)
    lock = RunLock(Path(root))
    try:
        with stop_requests():
            yield dist, lock
    finally:
        lock.release()
        D_.shutdown(dist)


def rank_device(device: str, dist: D_.DistInfo) -> str:
    """Under torchrun each process trains on its own GPU: ``cuda`` -> ``cuda:LOCAL_RANK``."""
    return f"cuda:{dist.local_rank}" if device.startswith("cuda") and dist.enabled else device


def agree_after_step(
    budget_over: bool, diverged_at: int, wall_us: int, dist: D_.DistInfo
) -> tuple[bool, int, int, int]:
    """The decision every rank takes after a step, in ONE collective (an element-wise maximum over ranks):
    ``(time budget over, stop signal number or 0, step of a divergence or 0, the run's clock in microseconds)``.
    The clock is the slowest rank's, so that a learning rate computed from it is the same on every rank."""
    over, signum, div_step, wall = D_.all_max(
        [int(budget_over), stop_requested(), diverged_at, wall_us], dist
    )
    return bool(over), signum, div_step, wall
