"""Timing and peak-memory helpers shared by the benchmark scripts.

Peak memory ("extra peak": the highest memory in use during a call minus the memory in use just before it):
- CUDA: ``torch.cuda`` allocator statistics, in-process;
- CPU: the process's peak resident set size. Linux lets a process reset its peak (writing ``5`` to
  ``/proc/self/clear_refs``, since Linux 4.0), so after a warm-up the peak is reset, the call runs, and
  ``VmHWM - VmRSS(before)`` is read from ``/proc/self/status``. Freed memory that the C allocator keeps could
  hide part of a later peak, so each measured case should run in a fresh process (:func:`run_in_subprocess`).
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall-clock seconds of one call, waiting for queued device work before and after."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def interleaved_medians(
    fns: dict[str, Callable[[], Any]], repeats: int, device: torch.device
) -> dict[str, float]:
    """Median seconds per function over ``repeats`` rounds; one warm-up call each.

    Each round calls every function once, in an order that rotates between rounds, so that slow drifts of the
    machine's speed hit all of them alike.
    """
    names = list(fns)
    for name in names:
        fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            times[name].append(time_once(fns[name], device))
    return {name: statistics.median(ts) for name, ts in times.items()}


def _proc_status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        match = re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {key}")
    return int(match.group(1))


def cpu_peak_supported() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _proc_status_kib("VmHWM")
    except (OSError, RuntimeError):
        return False
    return True


def extra_peak_bytes(fn: Callable[[], Any], device: torch.device) -> int:
    """Peak memory during ``fn()`` minus the memory in use just before it, in bytes (see module docstring)."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    if not cpu_peak_supported():
        raise RuntimeError("CPU peak memory needs Linux /proc/self/clear_refs")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident set size
    before = _proc_status_kib("VmRSS")
    fn()
    return (_proc_status_kib("VmHWM") - before) * 1024


def run_in_subprocess(argv: Sequence[str], timeout: float = 1800.0) -> dict[str, Any] | None:
    """Run ``python argv...``; parse its last stdout line as JSON; None if it failed (e.g. out of memory)."""
    proc = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        sys.stderr.write(f"subprocess {argv} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}\n")
        return None
    return json.loads(lines[-1])


def machine_info(device: torch.device) -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            match = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.MULTILINE)
        if match:
            cpu = match.group(1).strip()
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "load_average_1_5_15_min": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def format_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def write_json(path: Path, result: dict[str, Any]) -> None:
    """Write a benchmark's result as indented JSON to ``path`` (folders created) and say where on stderr."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)
