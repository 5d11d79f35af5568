"""Pieces of ``benchmarks/gpu_check.sh`` (driven by ``benchmarks/gpu_check.py``); each runs on the CPU too.

- :func:`build_step`: THE adapter to the library's trainer (the only function here that calls it);
- :func:`measure_peaks`: the machine's measured bf16 / TF32 / float32 matrix-product rates and copy bandwidth;
- :func:`time_steps`: steps/s of a step function, CUDA events around ``N`` unsynchronised steps;
- :func:`count_flops` / :func:`count_bytes`: FLOPs of one step (``FlopCounterMode``: matrix products AND
  convolutions, forward and backward) and the bytes its operators read and write (each aten operator's tensor
  inputs and outputs, views excluded: the traffic of an unfused eager step);
- :func:`profile_kernels`: GPU kernels (and copies) per step and the fraction of the step time the GPU is busy;
- :class:`PlainStep`: the same step written as a straightforward PyTorch loop (DataLoaders, three D passes,
  ``torch.optim.Adam``, ``.item()`` each step);
- :func:`project_hours`: the full schedule's hours from per-step, per-evaluation and per-checkpoint costs;
- :func:`two_process_run`: 2 processes on one GPU (gloo on CUDA tensors; NCCL where two GPUs exist);
- :func:`validate_result` / :func:`format_table`: the JSON's schema and the one printed table.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `improved_gan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from benchmarks.ssl_step import PlainLoop  # noqa: E402

SCHEMA = "improved-gan-gpu-check-v1"


# ------------------------------------------------------------------------------------------------- the adapter
@dataclass
class StepHandle:
    """What the benchmark needs of one trainer. ``step()`` runs one training step; ``evaluate()`` what a
    semi-supervised run does at each evaluation (test accuracy with and without the EMA); ``state()`` the
    checkpoint dict; ``save(folder, writer=None)`` writes ``checkpoints/last.pt`` and ``generator.pt`` as a run
    does at each checkpoint (``writer``: an ``AsyncCheckpointWriter``, as a CUDA run's periodic checkpoints)."""

    cfg: Any
    trainer: Any
    G: torch.nn.Module
    D: torch.nn.Module
    train_x: torch.Tensor
    train_y: torch.Tensor
    lab_idx: torch.Tensor | None
    step: Callable[[], Any]
    evaluate: Callable[[], dict[str, float]]
    state: Callable[[], dict[str, Any]]
    save: Callable[..., None]


def build_step(
    preset: str,
    *,
    data_dir: str | os.PathLike,
    device: str,
    sets: tuple[str, ...] = (),
    dist: Any = None,
    state: dict[str, Any] | None = None,
    channels_last: bool = False,
    device_options: bool = True,
) -> StepHandle:
    """Build the trainer of ``preset`` (``--set`` style ``sets``) on ``device``; restore ``state`` if given.

    As a run does, the trainer applies the configuration's GPU options on CUDA (``train.tf32``,
    ``train.cudnn_benchmark``) and, with ``channels_last`` (``train.channels_last=true``), puts the conv nets'
    weights and the image tensors in NHWC order on CUDA (``trainer.channels_last`` says whether it did).
    ``device_options=False`` puts back the process-wide settings found before the build (PyTorch's defaults
    in the check's ``as-is`` variant).

    The one place that uses the library's training API (``build.build_trainer``, ``Trainer.train_step``,
    ``test_accuracy``, ``state_dict``, ``schedule.save_run_checkpoint``): adapt here when that API changes."""
    from improved_gan.training.build import build_trainer
    from improved_gan.training.config import override
    from improved_gan.training.device_options import current_device_options, restore_device_options
    from improved_gan.training.distributed import DistInfo
    from improved_gan.training.presets import get_preset
    from improved_gan.training.run_folder import RunFolder
    from improved_gan.training.schedule import save_run_checkpoint

    cfg = override(get_preset(preset), [*sets, f"train.channels_last={str(channels_last).lower()}"])
    before = current_device_options()
    trainer, _ = build_trainer(
        cfg, data_dir=str(data_dir), device=device, dist=dist, state=state, source=None
    )
    if not device_options:
        restore_device_options(before)

    def evaluate() -> dict[str, float]:
        return {
            "test_accuracy": trainer.test_accuracy(use_ema=True),
            "test_accuracy_raw": trainer.test_accuracy(use_ema=False),
        }

    def save(folder: Path, writer: Any = None) -> None:
        # what a run writes at a checkpoint: checkpoints/last.pt and generator.pt (through ``writer``, an
        # AsyncCheckpointWriter, as a CUDA run's periodic checkpoints; else on this thread)
        save_run_checkpoint(trainer, RunFolder(folder), dist or DistInfo(), writer=writer)

    return StepHandle(
        cfg=cfg,
        trainer=trainer,
        G=trainer.G,
        D=trainer.D,
        train_x=trainer.data.train_x,
        train_y=trainer.data.train_y,
        lab_idx=trainer.lab_idx,
        step=trainer.train_step,
        evaluate=evaluate,
        state=trainer.state_dict,
        save=save,
    )


# ------------------------------------------------------------------------------------------------ timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[], Any], device: torch.device, steps: int, warmup: int = 3) -> float:
    """Seconds per step over ``steps`` consecutive steps, with no synchronisation between them.

    CUDA: an event recorded before the first and after the last step, one wait at the end (throughput, not the
    latency of single steps). CPU: ``time.perf_counter``."""
    for _ in range(warmup):
        step()
    sync(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(steps):
            step()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / steps
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def time_call(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall seconds of one call including the device work it queued."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------------------------- the machine
def best_seconds(fn: Callable[[], Any], device: torch.device, *, calls: int, blocks: int) -> float:
    """Best over ``blocks`` of the mean seconds of ``calls`` back-to-back calls of ``fn`` (CUDA events on a GPU,
    so that launch and synchronisation overheads do not count)."""
    fn()  # warm-up (cuBLAS handles, allocator)
    sync(device)
    best = math.inf
    for _ in range(blocks):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(calls):
                fn()
            end.record()
            end.synchronize()
            seconds = start.elapsed_time(end) / 1e3
        else:
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            seconds = time.perf_counter() - t0
        best = min(best, seconds / calls)
    return best


def _matmul_flops(n: int, dtype: torch.dtype, device: torch.device, calls: int, blocks: int) -> float:
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    return 2.0 * n**3 / best_seconds(lambda: torch.mm(a, b, out=out), device, calls=calls, blocks=blocks)


def measure_peaks(device: torch.device, *, small: bool) -> dict[str, float]:
    """Best FLOP/s of an ``n x n`` product in bfloat16, in float32 with TF32 allowed and with it refused, and the
    copy bandwidth (bytes read + written per second by ``dst.copy_(src)`` of a large float32 tensor).

    ``n`` = 8192 on CUDA (1,100 GFLOP per product: the tensor cores are saturated; the best of 5 blocks of 10
    products), 512 on the CPU or ``small``.
    """
    from improved_gan.training.device_options import apply_device_options, restore_device_options

    big = device.type == "cuda" and not small
    n = 8192 if big else 512
    calls, blocks = (10, 5) if big else (2, 3)
    out: dict[str, float] = {"matmul_n": n}
    saved = apply_device_options(tf32=True, cudnn_benchmark=False)
    try:
        out["bf16_flops"] = _matmul_flops(n, torch.bfloat16, device, calls, blocks)
        out["tf32_flops"] = _matmul_flops(n, torch.float32, device, calls, blocks)
        apply_device_options(tf32=False, cudnn_benchmark=False)
        out["fp32_flops"] = _matmul_flops(n, torch.float32, device, calls, blocks)
    finally:
        restore_device_options(saved)
    src = torch.rand((1 << 28) if big else (1 << 18), device=device)  # 1 GiB / 1 MiB of float32
    dst = torch.empty_like(src)
    seconds = best_seconds(lambda: dst.copy_(src), device, calls=calls, blocks=blocks)
    out["copy_bytes_per_s"] = 2.0 * src.numel() * src.element_size() / seconds  # read + write
    return out


# ------------------------------------------------------------------------------------------ counting a step
def count_flops(step: Callable[[], Any]) -> int:
    """FLOPs of one call of ``step`` as ``torch.utils.flop_counter.FlopCounterMode`` counts them (mm, addmm, bmm,
    convolution forward and backward, attention; element-wise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


class _ByteCounter(TorchDispatchMode):
    """Sums the bytes of every tensor argument and result of each aten operator (views and metadata excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if getattr(func, "is_view", False) or func in _NO_TRAFFIC:
            return out
        self.ops += 1
        seen: set[int] = set()

        def add(x: Any) -> None:
            if isinstance(x, torch.Tensor) and id(x) not in seen:
                seen.add(id(x))
                self.bytes += x.numel() * x.element_size()
            elif isinstance(x, (list, tuple)):
                for v in x:
                    add(v)

        for a in (*args, *(kwargs or {}).values()):
            add(a)
        add(out)
        return out


_NO_TRAFFIC = {
    torch.ops.aten.empty.memory_format,
    torch.ops.aten.empty_strided.default,
    torch.ops.aten.detach.default,
    torch.ops.aten._local_scalar_dense.default,
}


def count_bytes(step: Callable[[], Any]) -> tuple[int, int]:
    """``(bytes, operators)`` of one call of ``step``: an estimate of the memory traffic of the unfused eager step
    (each operator reads its inputs and writes its outputs once; caches and fusion make the real traffic lower)."""
    with _ByteCounter() as counter:
        step()
    return counter.bytes, counter.ops


def profile_kernels(step: Callable[[], Any], device: torch.device, steps: int, step_seconds: float) -> dict:
    """GPU activities (kernels, copies, memsets) per step and the GPU-busy fraction: the union of their intervals
    per step over the unprofiled step time ``step_seconds`` (capped at 1)."""
    from torch.profiler import ProfilerActivity, profile

    step()
    sync(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        sync(device)
    intervals = []
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            intervals.append((e.time_range.start, e.time_range.end))
    intervals.sort()
    busy, cur_start, cur_end = 0.0, None, None
    for s, t in intervals:
        if cur_end is None or s > cur_end:
            if cur_end is not None:
                busy += cur_end - cur_start
            cur_start, cur_end = s, t
        else:
            cur_end = max(cur_end, t)
    if cur_end is not None:
        busy += cur_end - cur_start
    busy_us_per_step = busy / steps
    return {
        "kernels_per_step": len(intervals) / steps,
        "gpu_busy_us_per_step": busy_us_per_step,
        "gpu_busy_fraction": min(1.0, busy_us_per_step / (step_seconds * 1e6)),
    }


def peak_memory(step: Callable[[], Any], device: torch.device, steps: int = 3) -> int:
    """Highest bytes allocated by the CUDA caching allocator over ``steps`` steps (model, data and optimizer
    included)."""
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    for _ in range(steps):
        step()
    sync(device)
    return int(torch.cuda.max_memory_allocated(device))


def no_sync_check(step: Callable[[], Any], steps: int = 3) -> dict:
    """Run ``steps`` steps under ``torch.cuda.set_sync_debug_mode("error")``: any host synchronisation raises."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(steps):
            step()
        return {"no_sync": True, "steps": steps, "error": None}
    except RuntimeError as exc:
        return {"no_sync": False, "steps": steps, "error": str(exc).strip().splitlines()[0][:300]}
    finally:
        torch.cuda.set_sync_debug_mode("default")


# -------------------------------------------------------------------------------------------- the plain loop
class PlainStep(PlainLoop):
    """The semi-supervised step (paper §5, feature matching §3.1) as a straightforward PyTorch script writes it:
    a shuffled ``DataLoader`` per stream over CPU tensors, each batch copied to the device, three D passes
    (labelled, unlabelled, generated made WITH gradient then detached), ``torch.optim.Adam``, a G step with
    autograd on for D too, and both losses read back with ``.item()`` every step. Deep copies of the trainer's
    G and D (same initial parameters). ``bf16``: the forward passes under bfloat16 autocast."""

    def __init__(self, handle: StepHandle, device: str, *, bf16: bool = False, channels_last: bool = False):
        source = types.SimpleNamespace(
            cfg=handle.cfg,
            G=handle.G,
            D=handle.D,
            lab_idx=handle.lab_idx,
            data=types.SimpleNamespace(train_x=handle.train_x, train_y=handle.train_y),
        )
        bs = handle.trainer.batch_size  # the per-rank batch
        super().__init__(source, device=device, bf16=bf16, batch_size=bs, channels_last=channels_last)

    def __call__(self) -> dict[str, float]:
        return self.train_step()


# --------------------------------------------------------------------------------------------- projection
def project_hours(
    *,
    steps: int,
    step_seconds: float,
    eval_every: int,
    eval_seconds: float,
    checkpoint_every: int,
    checkpoint_seconds: float,
    startup_seconds: float = 0.0,
) -> float:
    """Hours of a run of ``steps`` steps: ``steps * step_seconds``, plus one evaluation every ``eval_every`` steps
    and one checkpoint every ``checkpoint_every`` steps (``floor(steps / every)`` of each, and one more of each at
    the end when ``steps`` is not a multiple, as the run loop does), plus ``startup_seconds``."""
    if steps < 0 or eval_every < 1 or checkpoint_every < 1:
        raise ValueError("steps must be >= 0 and the cadences >= 1")
    n_eval = steps // eval_every + (1 if steps % eval_every else 0)
    n_ckpt = steps // checkpoint_every + (1 if steps % checkpoint_every else 0)
    total = steps * step_seconds + n_eval * eval_seconds + n_ckpt * checkpoint_seconds + startup_seconds
    return total / 3600.0


# -------------------------------------------------------------------------------------------- 2 processes
def _two_process_worker(
    rank: int, world: int, backend: str, store: str, preset: str, data_dir: str, device: str, sets, steps, out
) -> None:
    import torch.distributed as dist

    from improved_gan.training.distributed import DistInfo

    if device == "cuda":
        dev = f"cuda:{rank}" if backend == "nccl" else "cuda:0"
        torch.cuda.set_device(dev)
    else:
        dev = "cpu"
    dist.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        h = build_step(
            preset, data_dir=data_dir, device=dev, sets=tuple(sets), dist=DistInfo(rank, world, rank)
        )
        seconds = time_steps(h.step, torch.device(dev), steps, warmup=2)
        # identical parameters on every rank after the steps (CPU tensors: gloo gathers those everywhere)
        flat = torch.cat(
            [p.detach().float().reshape(-1).cpu() for p in [*h.G.parameters(), *h.D.parameters()]]
        )
        sums = torch.tensor(
            [flat.double().sum().item(), flat.double().abs().sum().item()], dtype=torch.float64
        )
        gathered = [torch.empty_like(sums) for _ in range(world)]
        dist.all_gather(gathered, sums)
        if rank == 0:
            result = {
                "backend": backend,
                "device": dev,
                "world_size": world,
                "per_rank_batch": h.trainer.batch_size,
                "global_batch": h.cfg.data.batch_size,  # data.batch_size is the global batch
                "steps": steps,
                "steps_per_s": 1.0 / seconds,
                "params_identical": all(torch.equal(g, gathered[0]) for g in gathered),
            }
            Path(out).write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def two_process_run(preset: str, data_dir: str, device: str, sets: tuple[str, ...], steps: int) -> dict:
    """Two processes training ``preset`` together: gloo on CUDA tensors of one GPU (NCCL refuses two ranks on one
    device), or NCCL with one GPU each where two exist; gloo on the CPU."""
    import torch.multiprocessing as mp

    backend = "nccl" if device == "cuda" and torch.cuda.device_count() >= 2 else "gloo"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        args = (
            2,
            backend,
            str(Path(tmp) / "store"),
            preset,
            str(data_dir),
            device,
            list(sets),
            steps,
            str(out),
        )
        mp.spawn(_two_process_worker, args=args, nprocs=2, join=True)
        return json.loads(out.read_text())


# ------------------------------------------------------------------------------------ the GPU -> CPU checkpoint
def _tensors(obj: Any):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def checkpoint_to_cpu(
    handle: StepHandle, preset: str, data_dir: str, sets: tuple[str, ...], folder: Path
) -> dict:
    """Write ``handle``'s checkpoint (on its device), load it on the CPU with ``weights_only=True``, restore a CPU
    trainer from it and train 2 steps; compare the restored generator with the device one."""
    handle.save(folder)
    last = Path(folder) / "checkpoints" / "last.pt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    devices = sorted({t.device.type for t in _tensors(state)})
    cpu = build_step(preset, data_dir=data_dir, device="cpu", sets=sets, state=state)
    same = all(
        torch.equal(a.detach().cpu(), b.detach())
        for a, b in zip(handle.G.state_dict().values(), cpu.G.state_dict().values())
    )
    step_loaded = cpu.trainer.step
    losses = [cpu.step() for _ in range(2)]
    finite = all(math.isfinite(float(v)) for row in losses for k, v in row.items() if k.startswith("loss"))
    return {
        "written_on": str(next(handle.G.parameters()).device),
        "tensor_devices_after_load": devices,
        "generator_equal": same,
        "step_loaded": step_loaded,
        "step_after": cpu.trainer.step,
        "losses_finite": finite,
        "bytes": last.stat().st_size,
    }


# ------------------------------------------------------------------------------------------- schema and table
REQUIRED_TOP = (
    "schema",
    "device",
    "small",
    "machine",
    "peaks",
    "presets",
    "two_process",
    "checkpoint_to_cpu",
)
REQUIRED_VARIANT = (
    "steps_timed",
    "step_ms",
    "steps_per_s",
    "flops_per_step",
    "flops_per_s",
    "peak_flops_used",
    "fraction_of_peak_flops",
    "bytes_per_step",
    "bytes_per_s",
    "fraction_of_bandwidth",
    "roofline_ms",
    "fraction_of_roofline",
    "kernels_per_step",
    "gpu_busy_fraction",
    "peak_memory_bytes",
    "eval_seconds",
    "checkpoint_seconds",
    "checkpoint_async_blocking_seconds",
    "no_sync",
    "plain_step_ms",
    "speedup_vs_plain",
    "projected_hours",
)


def null_paths(obj: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every ``None`` in nested dicts (lists by index)."""
    if obj is None:
        return [prefix]
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += null_paths(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += null_paths(v, f"{prefix}.{i}")
    return out


def validate_result(result: dict) -> list[str]:
    """Problems of a gpu_check result: missing keys, and null measurements without a reason in ``null_reasons``
    (every null must say why, e.g. "needs CUDA")."""
    problems = [f"missing {k}" for k in REQUIRED_TOP if k not in result]
    if result.get("schema") != SCHEMA:
        problems.append(f"schema is {result.get('schema')!r}, expected {SCHEMA!r}")
    for preset, block in result.get("presets", {}).items():
        variants = block.get("variants", {})
        if not variants:
            problems.append(f"presets.{preset}: no variants")
        for name, v in variants.items():
            problems += [
                f"missing presets.{preset}.variants.{name}.{k}" for k in REQUIRED_VARIANT if k not in v
            ]
    reasons = result.get("null_reasons", {})
    body = {k: v for k, v in result.items() if k != "null_reasons"}
    for path in null_paths(body):
        if not any(path == r or path.startswith(r + ".") for r in reasons) and not _is_error_field(path):
            problems.append(f"{path} is null without a reason")
    return problems


def _is_error_field(path: str) -> bool:
    return path.rsplit(".", 1)[-1].endswith("error")  # "no error" is null by design


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "ms":
        return f"{value:.3g} ms" if value < 100 else f"{value:.0f} ms"
    if kind == "s":
        return f"{value:.3g} s"
    if kind == "t":
        return f"{value / 1e12:.3g} T" if value >= 1e11 else f"{value / 1e9:.3g} G"
    if kind == "b":
        return f"{value / 2**30:.2f} GiB" if value >= 2**30 else f"{value / 2**20:.1f} MiB"
    if kind == "x":
        return f"{value:.2f}x"
    if kind == "h":
        return f"{value:.3g} h"
    if kind == "bool":
        return "yes" if value else "NO"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


TABLE_ROWS = (
    ("steps/s", "steps_per_s", ""),
    ("ms/step", "step_ms", "ms"),
    ("FLOP/step", "flops_per_step", "t"),
    ("FLOP/s", "flops_per_s", "t"),
    ("of measured peak", "fraction_of_peak_flops", "pct"),
    ("bytes/step (unfused)", "bytes_per_step", "b"),
    ("of copy bandwidth", "fraction_of_bandwidth", "pct"),
    ("roofline ms/step", "roofline_ms", "ms"),
    ("of roofline", "fraction_of_roofline", "pct"),
    ("GPU kernels/step", "kernels_per_step", ""),
    ("GPU busy", "gpu_busy_fraction", "pct"),
    ("peak memory", "peak_memory_bytes", "b"),
    ("evaluation", "eval_seconds", "s"),
    ("checkpoint (sync)", "checkpoint_seconds", "s"),
    ("checkpoint (async, blocks)", "checkpoint_async_blocking_seconds", "s"),
    ("no host sync in step", "no_sync", "bool"),
    ("plain loop ms/step", "plain_step_ms", "ms"),
    ("ours vs plain", "speedup_vs_plain", "x"),
    ("full schedule (projected)", "projected_hours", "h"),
)


def format_table(result: dict) -> str:
    """The one table: a row per measure, a column per (preset, variant), then the machine-wide lines as rows."""
    cols = [(p, v) for p, block in result["presets"].items() for v in block["variants"]]
    headers = ["measure"] + [f"{p}/{v}" for p, v in cols]
    rows = []
    for label, key, kind in TABLE_ROWS:
        rows.append([label] + [_fmt(result["presets"][p]["variants"][v].get(key), kind) for p, v in cols])
    pk = result["peaks"]
    tp = result["two_process"] or {}
    ck = result["checkpoint_to_cpu"] or {}
    extra = [
        (
            "measured peak bf16/tf32/fp32",
            " / ".join(_fmt(pk.get(k), "t") + "FLOP/s" for k in ("bf16_flops", "tf32_flops", "fp32_flops")),
        ),
        ("measured copy bandwidth", f"{pk['copy_bytes_per_s'] / 1e9:.1f} GB/s"),
        (
            "2 processes, 1 device",
            f"{tp.get('backend')} on {tp.get('device')}, {_fmt(tp.get('steps_per_s'), '')} steps/s, "
            f"global batch {tp.get('global_batch')}, params identical: {_fmt(tp.get('params_identical'), 'bool')}"
            if tp
            else "n/a",
        ),
        (
            "checkpoint on device -> CPU",
            f"written on {ck.get('written_on')}, loaded to {ck.get('tensor_devices_after_load')}, G equal: "
            f"{_fmt(ck.get('generator_equal'), 'bool')}, steps {ck.get('step_loaded')}->{ck.get('step_after')}"
            if ck
            else "n/a",
        ),
    ]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows]
    out += [f"{label.ljust(widths[0])}  {text}" for label, text in extra]
    return "\n".join(out)
