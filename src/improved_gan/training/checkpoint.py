"""Atomic files and checkpoints that ``torch.load(path, weights_only=True)`` reads.

Every file of a run folder is written to a temporary file in the same folder, flushed, fsync'ed and renamed over
the target, so a reader (or a resume after SIGKILL) sees either the old complete file or the new complete one.
A checkpoint is a dict of tensors, numbers, strings and state dicts, tagged with :data:`FORMAT`; anything else
is refused with :class:`~improved_gan.errors.CheckpointError` (never unpickled: ``weights_only=True``).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from improved_gan.errors import CheckpointError

FORMAT = "improved-gan-checkpoint-v1"
GENERATOR_FORMAT = "improved-gan-generator-v1"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any], *, fmt: str = FORMAT) -> None:
    """Serialise ``state`` (plus the format tag) to memory, check it reads back safely, then write atomically."""
    buf = io.BytesIO()
    torch.save({"format": fmt, **state}, buf)
    data = buf.getvalue()
    # Refuse to write what could not be loaded with weights_only=True: never replace a good file by a bad one.
    torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    atomic_write_bytes(path, data)


def load_checkpoint(
    path: str | os.PathLike, *, fmt: str = FORMAT, map_location: Any = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; raise CheckpointError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read means "not our checkpoint"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable improved-gan checkpoint ({first[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise CheckpointError(f"{path}: not an improved-gan checkpoint (expected format {fmt!r})")
    return state
