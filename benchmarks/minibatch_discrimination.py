"""Minibatch discrimination: our blocked pairwise-L1 layer against the naive (N, N, B, C) broadcast.

    python benchmarks/minibatch_discrimination.py [--sizes 64 256 512 1024] [--repeats 5] [--json PATH]

For each batch size N (A=192, B=100, C=5 as the reference CIFAR model) it measures one forward + backward
(gradients for the input and all parameters) of both implementations with the same parameters and inputs:
the median time over ``--repeats`` interleaved rounds, and the extra peak memory (peak during the call minus
memory before it), each case in a fresh process on CPU (see ``benchmarks/_common.py``). Prints a table and
writes JSON (default ``benchmarks/results/minibatch_discrimination.json``).
Targets: at N=512 at least 3x faster than naive; at N=1024 at most 10% of naive's extra peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `improved_gan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (  # noqa: E402
    extra_peak_bytes,
    format_bytes,
    interleaved_medians,
    machine_info,
    run_in_subprocess,
)
from improved_gan.nn import MinibatchDiscrimination  # noqa: E402

A, B, C = 192, 100, 5
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "minibatch_discrimination.json"


def naive_forward(layer: MinibatchDiscrimination, x: torch.Tensor) -> torch.Tensor:
    """The textbook broadcast, with the same parameters and self-exclusion as ``layer``."""
    x = x.flatten(1)  # (N, A)
    M = (x @ layer.T.reshape(A, -1)).reshape(x.shape[0], B, C)  # (N, B, C)
    dist = (M[:, None] - M[None, :]).abs().sum(-1)  # (N, N, B): the (N, N, B, C) tensor lives here
    o = torch.exp(-dist).sum(1) - 1.0 + layer.bias  # (N, B), self term exp(0) = 1 excluded
    return torch.cat([x, o], dim=1)  # (N, A + B)


def make_case(n: int, device: torch.device, seed: int = 0):
    """The layer, the input and the output weights of a case; identical for both implementations."""
    gen = torch.Generator().manual_seed(seed)
    layer = MinibatchDiscrimination(A, B, C)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.05 if p.dim() == 3 else 1.0))
    layer = layer.to(device)
    x = (torch.randn(n, A, generator=gen)).to(device).requires_grad_(True)
    w = torch.randn(n, A + B, generator=gen).to(device)
    return layer, x, w


def step_fn(impl: str, layer: MinibatchDiscrimination, x: torch.Tensor, w: torch.Tensor):
    forward = layer if impl == "ours" else (lambda inp: naive_forward(layer, inp))

    def step() -> None:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        (forward(x) * w).sum().backward()

    return step


def memory_case(impl: str, n: int, device: torch.device) -> dict[str, int]:
    """Child process: warm up on a tiny batch, then measure one forward + backward at size n."""
    layer, x, w = make_case(8, device)
    step_fn(impl, layer, x, w)()  # allocator, thread pools, autograd engine
    layer, x, w = make_case(n, device)
    return {"extra_peak_bytes": extra_peak_bytes(step_fn(impl, layer, x, w), device)}


def check_agreement(n: int, device: torch.device) -> float:
    layer, x, _ = make_case(n, device)
    with torch.no_grad():
        diff = (layer(x) - naive_forward(layer, x)).abs().max().item()
    return diff


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 512, 1024], help="batch sizes N")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per size (median reported)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the results")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--memory-case", nargs=2, metavar=("IMPL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    if args.memory_case:  # child process of the memory measurement
        impl, n = args.memory_case[0], int(args.memory_case[1])
        print(json.dumps(memory_case(impl, n, device)))
        return 0

    load_at_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if device.type == "cpu" and load_at_start and load_at_start[0] + torch.get_num_threads() > cores + 0.5:
        print(
            f"warning: load average {load_at_start[0]:.1f} on {cores} cores: threads will wait for each other "
            "and multi-threaded timings (ours has more, smaller parallel regions) are unreliable; "
            "consider --threads 1",
            file=sys.stderr,
        )
    script = str(Path(__file__).resolve())
    rows = []
    for n in args.sizes:
        max_diff = check_agreement(min(n, 256), device)
        memory = {}
        for impl in ("ours", "naive"):
            options = ["--device", args.device, "--threads", str(torch.get_num_threads())]
            child = run_in_subprocess([script, *options, "--memory-case", impl, str(n)])
            memory[impl] = None if child is None else child["extra_peak_bytes"]
        layer, x, w = make_case(n, device)
        times = interleaved_medians(
            {impl: step_fn(impl, layer, x, w) for impl in ("ours", "naive")}, args.repeats, device
        )
        row = {
            "N": n,
            "ours_seconds": times["ours"],
            "naive_seconds": times["naive"],
            "speedup": times["naive"] / times["ours"],
            "ours_extra_peak_bytes": memory["ours"],
            "naive_extra_peak_bytes": memory["naive"],
            "memory_fraction": None
            if None in memory.values() or not memory["naive"]
            else memory["ours"] / memory["naive"],
            "max_abs_output_difference": max_diff,
        }
        rows.append(row)
        print(
            f"N={n:5d}  ours {row['ours_seconds'] * 1e3:9.1f} ms  "
            f"naive {row['naive_seconds'] * 1e3:9.1f} ms  "
            f"speedup {row['speedup']:5.1f}x  extra peak ours {format_bytes(memory['ours']):>10}  "
            f"naive {format_bytes(memory['naive']):>10}",
            flush=True,
        )

    by_n = {row["N"]: row for row in rows}
    targets = {}
    if 512 in by_n:
        targets["speedup_at_512_at_least_3x"] = by_n[512]["speedup"] >= 3.0
    if 1024 in by_n and by_n[1024]["memory_fraction"] is not None:
        targets["memory_at_1024_at_most_10_percent"] = by_n[1024]["memory_fraction"] <= 0.10
    result = {
        "benchmark": "minibatch_discrimination forward+backward",
        "config": {"A": A, "B": B, "C": C, "repeats": args.repeats, "dtype": "float32"},
        "machine": machine_info(device),
        "load_average_at_start": load_at_start,
        "results": rows,
        "targets_met": targets,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")

    print()
    print("|     N | ours (ms) | naive (ms) | speedup | ours extra peak | naive extra peak | fraction |")
    print("|------:|----------:|-----------:|--------:|----------------:|-----------------:|---------:|")
    for row in rows:
        frac = "n/a" if row["memory_fraction"] is None else f"{row['memory_fraction'] * 100:.2f}%"
        print(
            f"| {row['N']:5d} | {row['ours_seconds'] * 1e3:9.1f} | {row['naive_seconds'] * 1e3:10.1f} "
            f"| {row['speedup']:6.1f}x | {format_bytes(row['ours_extra_peak_bytes']):>15} "
            f"| {format_bytes(row['naive_extra_peak_bytes']):>16} | {frac:>8} |"
        )
    print(f"\nmachine: {result['machine']}\ntargets met: {targets}\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
