"""Atomic files and checkpoints that ``torch.load(path, weights_only=True)`` reads.

Every file of a run folder is written to a temporary file in the same folder, flushed, fsync'ed and renamed over
the target, so a reader (or a resume after SIGKILL) sees either the old complete file or the new complete one.
The file gets the mode an ordinary ``open()`` would give it (``0o666`` less the umask: 0644 under the usual
umask 022), not the 0600 of a bare temporary file. A failed write (a full disk, no permission) removes the
temporary file, leaves the previous file untouched and raises :class:`~improved_gan.errors.StorageError` naming
the file and the reason (README, "Long runs on clusters").

A checkpoint is a dict of CPU tensors, numbers, strings and state dicts, tagged with :data:`FORMAT`; anything else
is refused with :class:`~improved_gan.errors.CheckpointError` (never unpickled: ``weights_only=True``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import torch

from improved_gan.errors import CheckpointError, StorageError

FORMAT = "improved-gan-checkpoint-v1"
GENERATOR_FORMAT = "improved-gan-generator-v1"

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask (read from ``/proc`` where available, else by setting and restoring it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def storage_error(path: str | os.PathLike, exc: OSError) -> StorageError:
    """One-line :class:`StorageError` for an OSError while writing ``path`` (e.g. ``No space left on device``)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return StorageError(f"{path}: cannot write ({reason})")


def _read_back(path: Path) -> bytes:
    """The bytes of ``path`` as the disk returns them (tests replace it to simulate a corrupting disk)."""
    with open(path, "rb") as f:
        return f.read()


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, verify: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename).

    The mode follows the umask; on any failure (OSError, or an interrupt) the temporary file is removed and the
    previous ``path`` is left as it was. OSError is raised as :class:`StorageError` naming ``path``. With
    ``verify``, the temporary file is read back and compared (SHA-256) with ``data`` before the rename; a
    difference is a :class:`StorageError` and leaves ``path`` unchanged.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if verify and hashlib.sha256(_read_back(Path(tmp))).digest() != hashlib.sha256(data).digest():
            raise StorageError(f"{path}: the bytes read back differ from those written (file left unchanged)")
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise storage_error(path, exc) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def to_cpu(obj: Any) -> Any:
    """``obj`` with every tensor (in nested dicts, lists and tuples) moved to the CPU; other values unchanged.

    Checkpoints of a CUDA run must load with ``torch.load(path, weights_only=True)`` on a machine without CUDA.
    """
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_cpu(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_cpu(v) for v in obj)
    return obj


def checkpoint_bytes(state: dict[str, Any], *, fmt: str = FORMAT) -> bytes:
    """The bytes :func:`save_checkpoint` writes: ``state`` on the CPU plus the format tag, checked to read back
    with ``weights_only=True`` (so a good file is never replaced by one that cannot be loaded)."""
    buf = io.BytesIO()
    torch.save({"format": fmt, **to_cpu(state)}, buf)
    data = buf.getvalue()
    torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return data


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any], *, fmt: str = FORMAT) -> bytes:
    """Serialise ``state`` (on the CPU, plus the format tag) to memory, check it reads back safely, then write it
    atomically; returns the bytes written (for a copy such as ``keep_every``'s)."""
    data = checkpoint_bytes(state, fmt=fmt)
    atomic_write_bytes(path, data)
    return data


def load_checkpoint(
    path: str | os.PathLike,
    *,
    fmt: str = FORMAT,
    map_location: Any = "cpu",
    required: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; raise CheckpointError for anything else.

    The error is one line naming ``path`` and what is wrong: no such file, an empty file, not a checkpoint
    (truncated or corrupt), Python objects other than tensors and plain data (never unpickled), another format,
    or a missing entry of ``required`` (e.g. ``missing 'step'``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a checkpoint")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's note on the pickle protocol of a foreign file
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read means "not our checkpoint"
        raise CheckpointError(f"{path}: {_unreadable_reason(exc)}") from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise CheckpointError(f"{path}: not an improved-gan checkpoint (expected format {fmt!r})")
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"{path}: missing {', '.join(repr(k) for k in missing)}")
    return state


def _unreadable_reason(exc: Exception) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed, in our words: torch's own message advises loading
    with ``weights_only=False`` (running whatever code the file holds), which a checkpoint never needs."""
    text = str(exc)
    if "Unsupported global" in text:
        return (
            "holds Python objects other than tensors and plain data, so it was not written by improved-gan "
            "(such files are never unpickled: that could run code)"
        )
    return "not a checkpoint (truncated or corrupt)"
