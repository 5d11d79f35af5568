"""Exceptions for bad user input. The CLI turns every :class:`UserError` into one ``error:`` line, exit 2."""

__all__ = ["CheckpointError", "ConfigError", "DataError", "UserError"]


class UserError(Exception):
    """Bad input from the user (a file, an option, a value). The message is one line naming what and why."""


class DataError(UserError):
    """A data file or directory is missing or malformed; the message names the file and what was expected."""


class ConfigError(UserError):
    """An unknown preset or configuration key, or an invalid value."""


class CheckpointError(UserError):
    """A checkpoint or run folder that is missing, incomplete or not written by improved-gan."""
