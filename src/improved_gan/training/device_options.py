"""Options a GPU run needs, applied from plain arguments (README, "GPU options"; docs, "Multi-process training").

- :func:`apply_device_options`: TF32 matrix products and convolutions, and ``cudnn.benchmark`` (the autotuner,
  worth it for the static shapes of a training step). Returns the previous settings; :func:`restore_device_options`
  puts them back (tests, benchmarks that compare variants in one process).
- :func:`to_channels_last`: a conv net's 4-D parameters and buffers, and 4-D inputs, in NHWC memory order
  (``torch.channels_last``), the layout cuDNN's tensor-core convolutions want. Other tensors are left as they are.
- :class:`AsyncCheckpointWriter`: checkpoint files written by a background thread, still atomic and verified; the
  training thread only takes a snapshot of the tensors.

What "fp32" means on a GPU: with ``tf32=True`` (the default proposed for CUDA) matrix products and convolutions of
float32 tensors run on tensor cores with inputs rounded to TF32 (10 mantissa bits, float32 range) and float32
accumulation; element-wise work, reductions and the optimizer stay float32. With ``cudnn_benchmark=True`` cuDNN
times several algorithms on the first call of each shape and keeps the fastest; some of them (and the atomics of
several backward kernels) are not deterministic, so two GPU runs of one seed differ in the last bits and then
drift apart, as GAN trajectories amplify differences. ``deterministic=True`` asks for reproducible algorithms
(``torch.backends.cudnn.deterministic``), slower. None of this applies to the CPU, where float32 is float32.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "AsyncCheckpointWriter",
    "DeviceOptions",
    "apply_device_options",
    "restore_device_options",
    "snapshot_to_cpu",
    "to_channels_last",
    "write_verified",
]


@dataclass(frozen=True)
class DeviceOptions:
    """The process-wide settings :func:`apply_device_options` changes (also what it returns: the old values)."""

    matmul_tf32: bool
    cudnn_tf32: bool
    cudnn_benchmark: bool
    cudnn_deterministic: bool
    float32_matmul_precision: str


def current_device_options() -> DeviceOptions:
    return DeviceOptions(
        matmul_tf32=bool(torch.backends.cuda.matmul.allow_tf32),
        cudnn_tf32=bool(torch.backends.cudnn.allow_tf32),
        cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
        cudnn_deterministic=bool(torch.backends.cudnn.deterministic),
        float32_matmul_precision=torch.get_float32_matmul_precision(),
    )


def apply_device_options(
    *, tf32: bool = True, cudnn_benchmark: bool = True, deterministic: bool = False
) -> DeviceOptions:
    """Set the process-wide GPU options; returns the previous ones (for :func:`restore_device_options`).

    Args:
        tf32: float32 matrix products (``torch.backends.cuda.matmul.allow_tf32``, and
            ``set_float32_matmul_precision("high")``) and convolutions (``torch.backends.cudnn.allow_tf32``) may
            use TF32 tensor cores. ``False`` gives IEEE float32 products (``"highest"``) on the GPU.
        cudnn_benchmark: let cuDNN time its algorithms on the first call of each input shape and keep the fastest.
        deterministic: ``torch.backends.cudnn.deterministic``: reproducible cuDNN algorithms only. Refused
            together with ``cudnn_benchmark`` (the autotuner may pick a nondeterministic algorithm).

    The settings are harmless on a machine without CUDA (they affect CUDA kernels only).
    """
    if deterministic and cudnn_benchmark:
        raise ValueError("deterministic=True needs cudnn_benchmark=False (the autotuner picks any algorithm)")
    previous = current_device_options()
    torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    torch.backends.cudnn.allow_tf32 = bool(tf32)
    torch.backends.cudnn.benchmark = bool(cudnn_benchmark)
    torch.backends.cudnn.deterministic = bool(deterministic)
    return previous


def restore_device_options(options: DeviceOptions) -> None:
    """Put back settings returned by :func:`apply_device_options` (or :func:`current_device_options`)."""
    torch.set_float32_matmul_precision(options.float32_matmul_precision)
    torch.backends.cuda.matmul.allow_tf32 = options.matmul_tf32
    torch.backends.cudnn.allow_tf32 = options.cudnn_tf32
    torch.backends.cudnn.benchmark = options.cudnn_benchmark
    torch.backends.cudnn.deterministic = options.cudnn_deterministic


# ------------------------------------------------------------------------------------------------- channels_last
def has_conv(module: nn.Module) -> bool:
    """Whether ``module`` contains a 2-D (transposed) convolution: the nets channels_last can help."""
    return any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in module.modules()) or any(
        p.dim() == 4 for p in module.parameters()
    )


def to_channels_last(obj: Any) -> Any:
    """``obj`` in channels_last (NHWC) memory order where it is 4-D; anything else unchanged.

    - a module: its 4-D parameters and buffers (conv weights ``(out, in, kh, kw)``) are converted in place
      (``module.to(memory_format=torch.channels_last)``), the module is returned; an MLP is left as it is;
    - a tensor ``(N, C, H, W)``: a channels_last copy (same values and shape, other strides); other ranks are
      returned as they are.

    The values are unchanged: only the strides differ, so results agree with NCHW up to the order of floating-point
    sums inside the convolution kernels.
    """
    if isinstance(obj, nn.Module):
        if has_conv(obj):
            obj.to(memory_format=torch.channels_last)
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.contiguous(memory_format=torch.channels_last) if obj.dim() == 4 else obj
    raise TypeError(f"to_channels_last expects a module or a tensor, got {type(obj).__name__}")


# ------------------------------------------------------------------------------------------ async checkpoints
def snapshot_to_cpu(obj: Any) -> tuple[Any, Callable[[], None]]:
    """A copy of ``obj`` (nested dicts/lists/tuples) with every tensor copied to fresh CPU memory, and a function
    that waits until the copies are complete.

    CUDA tensors are copied without blocking into pinned memory and a CUDA event is recorded after the copies, so
    the caller (the training thread) does not wait for the GPU; the returned ``wait()`` synchronises on that
    event. CPU tensors are cloned (training goes on changing the originals in place). Other values are shared.
    """
    pending: list[torch.cuda.Event] = []

    def copy(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            x = x.detach()
            if x.device.type == "cuda":
                out = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)
                out.copy_(x, non_blocking=True)
                if not pending:
                    pending.append(torch.cuda.Event())
                return out
            return x.clone()
        if isinstance(x, dict):
            return {k: copy(v) for k, v in x.items()}
        if isinstance(x, list):
            return [copy(v) for v in x]
        if isinstance(x, tuple):
            return tuple(copy(v) for v in x)
        return x

    snap = copy(obj)
    if pending:
        pending[0].record()  # after every copy queued above, on the current stream

    def wait() -> None:
        if pending:
            pending[0].synchronize()

    return snap, wait


def _default_serialize(state: Any) -> bytes:
    """``torch.save`` bytes of ``state``, checked to load back with ``weights_only=True``."""
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return data


def write_verified(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and verified: a temporary file in the same folder, fsync, read back
    and compared (SHA-256) with ``data``, and only then renamed over ``path``. On any failure the temporary file is
    removed, ``path`` keeps its previous content and :class:`~improved_gan.errors.StorageError` names ``path``."""
    from improved_gan.training.checkpoint import atomic_write_bytes

    atomic_write_bytes(path, data, verify=True)


class AsyncCheckpointWriter:
    """Checkpoint files written by one background thread: atomic, verified, errors reported on the next call.

    :meth:`submit` takes a snapshot of the state on the calling thread (:func:`snapshot_to_cpu`: copies only, no
    wait for the GPU) and returns; the thread then waits for the copies, serialises (``serialize(state) -> bytes``;
    the default ``torch.save`` + a ``weights_only=True`` re-load, as ``checkpoint.checkpoint_bytes`` does; pass
    ``checkpoint.checkpoint_bytes`` for the run's format tag) and writes each path with :func:`write_verified`
    (temporary file, fsync, read back and compared, rename).

    At most one write is in flight: :meth:`submit` first waits for the previous one. An error of a write (a full
    disk, a verification mismatch, a state that does not serialise) is raised by the NEXT call of :meth:`submit`,
    :meth:`wait` or :meth:`close`, exactly once; a failed write never replaces the previous file (the rename is the
    last step). :meth:`close` waits and stops the thread; the writer is also a context manager.
    """

    def __init__(
        self,
        *,
        serialize: Callable[[Any], bytes] | None = None,
    ) -> None:
        self._serialize = serialize or _default_serialize
        self._cond = threading.Condition()
        self._job: list | None = None  # [(snapshot, wait for its copies, paths, serialize or None)]
        self._busy = False
        self._error: BaseException | None = None
        self._closed = False
        self.written: list[Path] = []  # paths written and verified, in order
        self._thread = threading.Thread(target=self._run, name="improved-gan-checkpoint", daemon=True)
        self._thread.start()

    # -- training thread
    def submit(self, state: Any, *paths: str | os.PathLike) -> None:
        """Write ``state`` to every path in ``paths`` (the same bytes) in the background."""
        self.submit_group([(state, paths, None)])

    def submit_group(
        self, items: list[tuple[Any, tuple[str | os.PathLike, ...], Callable[[Any], bytes] | None]]
    ) -> None:
        """Several files in ONE background job, written in order: ``(state, paths, serialize)`` each
        (``serialize`` None: the writer's). E.g. a run's ``last.pt`` and its ``keep_every`` copy (one state, two
        paths), then ``generator.pt`` (another state, another format). A failure stops the job there: the files
        before it are written, the one failing and those after it keep their previous content."""
        if not items or any(not paths for _, paths, _ in items):
            raise ValueError("submit needs at least one path per state")
        self.wait()
        if self._closed:
            raise RuntimeError("AsyncCheckpointWriter is closed")
        snaps = [(*snapshot_to_cpu(state), tuple(Path(p) for p in paths), fn) for state, paths, fn in items]
        with self._cond:
            self._job = snaps
            self._busy = True
            self._cond.notify_all()

    def wait(self) -> None:
        """Block until the write in flight (if any) is done; raise its error if it failed."""
        with self._cond:
            while self._busy:
                self._cond.wait()
            error, self._error = self._error, None
        if error is not None:
            raise error

    def close(self) -> None:
        """Wait for the write in flight, stop the thread; raise a pending error. Closing twice is allowed."""
        try:
            self.wait()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._thread.join()

    def __enter__(self) -> AsyncCheckpointWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- background thread
    def _run(self) -> None:
        while True:
            with self._cond:
                while self._job is None and not self._closed:
                    self._cond.wait()
                if self._job is None:
                    return
                job, self._job = self._job, None
            error: BaseException | None = None
            try:
                for item in job:
                    self._do(*item)
            except BaseException as exc:  # noqa: BLE001 - handed to the training thread
                error = exc
            with self._cond:
                self._error = error
                self._busy = False
                self._cond.notify_all()

    def _do(
        self, state: Any, ready: Callable[[], None], paths: tuple[Path, ...], serialize: Callable | None
    ) -> None:
        ready()
        data = (serialize or self._serialize)(state)
        for path in paths:
            write_verified(path, data)
            self.written.append(path)
