"""Exceptions the command line turns into one ``error:`` line (no traceback) and a documented exit status.

README, "Long runs on clusters" lists the exit statuses: 2 bad input (:class:`UserError` and most subclasses),
3 a diverged run (:class:`DivergenceError`), 74 a run file that could not be written (:class:`StorageError`),
128 + the signal number for a run stopped by a signal (:class:`StopRequested`: 130 SIGINT, 143 SIGTERM,
138 SIGUSR1).
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DivergenceError",
    "RunInUseError",
    "StopRequested",
    "StorageError",
    "UserError",
]


class UserError(Exception):
    """Bad input from the user (a file, an option, a value). The message is one line naming what and why."""

    #: the process exit status the command line returns for this error
    exit_code = 2
    #: True on the non-zero ranks of a torchrun job that only repeat rank 0's error (printed once, by rank 0)
    quiet = False


class DataError(UserError):
    """A data file or directory is missing or malformed; the message names the file and what was expected."""


class ConfigError(UserError):
    """An unknown preset or configuration key, or an invalid value."""


class CheckpointError(UserError):
    """A checkpoint or run folder that is missing, incomplete or not written by improved-gan."""


class RunInUseError(UserError):
    """The run folder is being written by another live process (its lock is held)."""


class StorageError(UserError):
    """A run file could not be written (disk full, permissions, ...): the message names the file and the reason.
    The previous version of the file, if any, is left intact and no temporary file remains."""

    exit_code = 74  # EX_IOERR of sysexits.h


class DivergenceError(UserError):
    """A training loss became non-finite (NaN or infinite); the run stopped without saving that state."""

    exit_code = 3


class StopRequested(Exception):
    """A run stopped on a stop request (SIGINT, SIGTERM, SIGUSR1) after writing a checkpoint at ``step``.

    ``exit_code`` is 128 + the signal number, as a shell reports a process killed by that signal.
    """

    def __init__(self, signum: int, step: int, folder: str, *, started: bool = True):
        import signal

        self.signum, self.step, self.folder, self.started = signum, step, folder, started
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(f"{folder}: stopped by {self.signal_name} at step {step}")
