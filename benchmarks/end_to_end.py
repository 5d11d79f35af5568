"""End to end: ``improved-gan train PRESET --steps N`` as a whole process against the straightforward script.

Usage: ``python benchmarks/end_to_end.py [--steps 600] [--repeats 3] [--variants bf16,passive] [--step-blocks 5]
[--device cpu] [--preset fmnist-ssl] [--data-dir DIR] [--json PATH] [--skip-step]``.

Part 1, whole processes (start-up, data, initialisation, training, evaluation, checkpoint, sample grids and
plots all included), default thread settings, back to back: ``--repeats`` rounds, each running every runner once
in an order that rotates from round to round, so that slow drifts of a shared machine hit all alike. Runners:

- ``ours``: ``python -m improved_gan train PRESET --steps N --quiet`` in a fresh folder;
- ``plain``: ``python benchmarks/plain_process.py`` (the loop of ``benchmarks/ssl_step.py`` as a whole script);
- variants: ``bf16`` adds ``ours_bf16`` (``--set train.precision=bf16``); ``passive`` adds ``ours_passive`` and
  ``plain_passive``, both with ``OMP_WAIT_POLICY=PASSIVE`` in the environment (OpenMP threads sleep instead of
  spinning while they wait, which matters when the machine runs more threads than it has cores).

Reported: the median wall time of each runner and its ratio to ``plain`` (plain seconds / runner seconds, so
above 1 is faster), and ours' fixed cost (process wall time minus the training loop's own ``wall_seconds``).

Part 2, the step alone, in this process (``--skip-step`` skips it): our step (fp32 and bf16) and the plain
step, interleaved blocks of ``--step-steps`` steps. Two measures of how close a step is to the machine:

- ``fraction_of_matmul_floor``: every matrix product of one step is recorded (shape, strides, dtype, with a
  ``TorchDispatchMode``), each is timed alone (the best of 15 round-robin passes over all the recorded shapes of
  all runners) and the sum, the time the step's matrix
  products take at the speed this machine reaches for THESE shapes, is divided by the measured step time;
- ``fraction_of_peak``: the step's counted matmul FLOPs per second over the best float32 ``torch.mm`` rate of
  1024^2 and 2048^2 matrices (bf16: over the best bf16 rate).

Writes ``benchmarks/results/end_to_end.json`` (or ``--json``) with the machine, the load average before and
after, every round's seconds and both parts' results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `improved_gan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import machine_info, write_json  # noqa: E402
from benchmarks.ssl_step import PlainLoop, counted_flops, interleaved  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "end_to_end.json"
TARGET_RATIO = 2.0
TARGET_FRACTION = 0.5


# ------------------------------------------------------------------------------------------- whole processes
def runner_commands(args: argparse.Namespace, tmp: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (argv with a ``{round}`` placeholder in output paths, extra environment)."""
    common = ["--device", args.device] + (["--data-dir", args.data_dir] if args.data_dir else [])
    for item in args.set:
        common += ["--set", item]
    ours = [sys.executable, "-m", "improved_gan", "train", args.preset, "--steps", str(args.steps), "--quiet"]
    plain = [sys.executable, str(ROOT / "benchmarks" / "plain_process.py"), "--preset", args.preset]
    plain += ["--steps", str(args.steps)]
    runners = {
        "ours": ([*ours, "--out", str(tmp / "ours-{round}"), *common], {}),
        "plain": ([*plain, "--out", str(tmp / "plain-{round}.pt"), *common], {}),
    }
    if "bf16" in args.variants:
        argv = [*ours, "--out", str(tmp / "ours_bf16-{round}"), "--set", "train.precision=bf16", *common]
        runners["ours_bf16"] = (argv, {})
    if "plain_bf16" in args.variants:
        runners["plain_bf16"] = ([*plain, "--bf16", "--out", str(tmp / "plain_bf16-{round}.pt"), *common], {})
    if "passive" in args.variants:
        env = {"OMP_WAIT_POLICY": "PASSIVE"}
        runners["ours_passive"] = ([*ours, "--out", str(tmp / "ours_passive-{round}"), *common], env)
        runners["plain_passive"] = ([*plain, "--out", str(tmp / "plain_passive-{round}.pt"), *common], env)
    return runners


def run_process(argv: list[str], env_extra: dict[str, str], timeout: float) -> tuple[float, dict]:
    """Wall seconds of one whole process and what it reported (ours: its summary.json; plain: its JSON line)."""
    env = {**os.environ, **env_extra, "PYTHONPATH": str(ROOT / "src")}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
    if "--quiet" in argv:  # ours: the run folder's summary
        out = Path(argv[argv.index("--out") + 1])
        return seconds, json.loads((out / "summary.json").read_text())
    return seconds, json.loads(proc.stdout.strip().splitlines()[-1])


def whole_processes(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="end_to_end_") as tmp:
        runners = runner_commands(args, Path(tmp))
        names = list(runners)
        rounds: dict[str, list[dict]] = {n: [] for n in names}
        for r in range(args.repeats):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                argv, env = runners[name]
                argv = [a.replace("{round}", str(r)) for a in argv]
                load = os.getloadavg()[0]
                seconds, report = run_process(argv, env, timeout=args.timeout)
                row = {"seconds": seconds, "load_before": load}
                if name.startswith("ours"):
                    row.update(
                        loop_seconds=report["wall_seconds"],
                        fixed_seconds=seconds - report["wall_seconds"],
                        test_accuracy=report.get("test_accuracy"),
                    )
                else:
                    row.update(phases=report["seconds"], test_accuracy=report["test_accuracy"])
                rounds[name].append(row)
                print(
                    f"  round {r} {name:<14}{seconds:8.1f} s  (load {load:.1f})", file=sys.stderr, flush=True
                )
    base = statistics.median(row["seconds"] for row in rounds["plain"])
    summary = {}
    for name, rows in rounds.items():
        med = statistics.median(row["seconds"] for row in rows)
        entry = {"median_seconds": med, "ratio_to_plain": base / med, "seconds": [r["seconds"] for r in rows]}
        if name.startswith("ours"):
            entry["median_fixed_seconds"] = statistics.median(r["fixed_seconds"] for r in rows)
        entry["test_accuracy"] = [r["test_accuracy"] for r in rows]
        # paired ratios: plain of the same round over this runner, robust to drifts between rounds
        entry["paired_ratios"] = [p["seconds"] / r["seconds"] for p, r in zip(rounds["plain"], rows)]
        summary[name] = entry
    return {"rounds": rounds, "summary": summary}


# ------------------------------------------------------------------------------------------------ step alone
_MM_OPS = {"mm", "addmm", "bmm", "baddbmm"}


class MatmulRecorder(TorchDispatchMode):
    """Records ``(op, [(shape, stride, dtype) of each tensor argument])`` of every matrix product."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, list[tuple]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in _MM_OPS:
            tensors = [
                (tuple(a.shape), tuple(a.stride()), a.dtype) for a in args if isinstance(a, torch.Tensor)
            ]
            self.calls.append((name, tensors))
        return func(*args, **(kwargs or {}))


def _like(shape, stride, dtype, device) -> torch.Tensor:
    size = 1 + sum((n - 1) * s for n, s in zip(shape, stride)) if shape else 1
    return torch.randn(size, device=device).to(dtype).as_strided(shape, stride)


def record_matmuls(step) -> list[tuple[str, tuple]]:
    """``(op, tensors)`` of every matrix product of one call of ``step``."""
    rec = MatmulRecorder()
    with rec:
        step()
    return [(name, tuple(tensors)) for name, tensors in rec.calls]


def best_matmul_seconds(keys: set, device: torch.device, rounds: int = 15) -> dict:
    """Best seconds of each recorded product, timed alone: ``rounds`` round-robin passes over all of them (so a
    burst of load on a shared machine hits every shape alike) and the minimum per shape."""
    inputs = {key: [_like(*t, device) for t in key[1]] for key in keys}
    best = dict.fromkeys(keys, float("inf"))
    for _ in range(rounds):
        for key, ins in inputs.items():
            fn = getattr(torch, key[0])
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            fn(*ins)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best[key] = min(best[key], time.perf_counter() - t0)
    return best


def mm_peak(dtype: torch.dtype, device: torch.device, sizes=(1024, 2048), reps: int = 5) -> float:
    """Best ``torch.mm`` FLOP/s of square matrices of ``sizes`` in ``dtype``."""
    best_rate = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
        torch.mm(a, b)
        for _ in range(reps):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            torch.mm(a, b)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best_rate = max(best_rate, 2 * n**3 / (time.perf_counter() - t0))
    return best_rate


def step_alone(args: argparse.Namespace) -> dict:
    from improved_gan.training.config import override
    from improved_gan.training.presets import get_preset
    from improved_gan.training.run import load_train_data
    from improved_gan.training.trainer import Trainer

    device = torch.device(args.device)
    cfg = override(get_preset(args.preset), args.set)
    data, _ = load_train_data(cfg, data_dir=args.data_dir, device=args.device)
    ours = Trainer(cfg, data, device=args.device)
    ours_bf16 = Trainer(override(cfg, ["train.precision=bf16"]), data, device=args.device)
    plain = PlainLoop(ours, device=args.device)

    def sync_step(fn):
        def step():
            out = fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return out

        return step

    runners = {"ours": ours.train_step, "ours_bf16": ours_bf16.train_step, "plain": plain.train_step}
    runners = {k: sync_step(v) for k, v in runners.items()}
    times = interleaved(runners, steps=args.step_steps, repeats=args.step_blocks, warmup=3)
    peaks = {"fp32": mm_peak(torch.float32, device), "bf16": mm_peak(torch.bfloat16, device)}
    out = {"matmul_peak_flop_per_s": peaks, "runners": {}}
    calls = {name: record_matmuls(fn) for name, fn in runners.items()}
    best = best_matmul_seconds({key for c in calls.values() for key in c}, device)
    for name, fn in runners.items():
        sec = statistics.median(times[name]) / args.step_steps
        floor = sum(best[key] for key in calls[name])
        flops = counted_flops(fn)
        peak = peaks["bf16" if "bf16" in name else "fp32"]
        out["runners"][name] = {
            "steps_per_s": 1.0 / sec,
            "ms_per_step": sec * 1e3,
            "block_seconds": times[name],
            "matmuls_per_step": len(calls[name]),
            "matmul_floor_ms": floor * 1e3,
            "fraction_of_matmul_floor": floor / sec,
            "flops_per_step": flops,
            "flop_per_s": flops / sec,
            "fraction_of_peak": flops / sec / peak,
        }
    base = out["runners"]["plain"]["steps_per_s"]
    for row in out["runners"].values():
        row["ratio_to_plain"] = row["steps_per_s"] / base
    return out


# ------------------------------------------------------------------------------------------------------ main
def print_report(result: dict) -> None:
    m = result["machine"]
    print(
        f"{result['preset']}, {result['steps']} steps, device {m['device']}, {m['cpu']}, "
        f"{m['torch_threads']} thread(s) by default, load average {m['load_average_1_5_15_min'][0]:.1f} -> "
        f"{m['load_average_end'][0]:.1f}"
    )
    if "whole_process" in result:
        _print_whole(result)
    else:
        print("(whole processes not run: --repeats 0)")
    if "step" in result:
        _print_step(result["step"])


def _print_whole(result: dict) -> None:
    print(
        f"{'whole process':<16}{'median s':>10}{'x plain':>9}{'paired x plain':>24}{'fixed s':>9}{'test acc':>10}"
    )
    for name, r in result["whole_process"]["summary"].items():
        paired = ", ".join(f"{x:.2f}" for x in r["paired_ratios"])
        fixed = f"{r['median_fixed_seconds']:9.1f}" if "median_fixed_seconds" in r else f"{'':9}"
        acc = statistics.median(a for a in r["test_accuracy"] if a is not None)
        print(
            f"{name:<16}{r['median_seconds']:>10.1f}{r['ratio_to_plain']:>9.2f}{paired:>24}{fixed}{acc:>10.4f}"
        )
    verdict = "met" if result["target_met"] else "NOT met"
    print(
        f"target: ours >= {TARGET_RATIO}x plain end to end: {verdict} ({result['best_default_ratio']:.2f}x)"
    )


def _print_step(s: dict) -> None:
    peaks = ", ".join(f"{k} {v / 1e9:.0f}" for k, v in s["matmul_peak_flop_per_s"].items())
    print(f"\nthe step alone (in process, interleaved); mm peak GFLOP/s (1024^2/2048^2): {peaks}")
    head = f"{'runner':<12}{'steps/s':>9}{'x plain':>9}{'mm floor ms':>13}{'of floor':>10}{'GFLOP/s':>9}"
    print(f"{head}{'of peak':>9}")
    for name, r in s["runners"].items():
        print(
            f"{name:<12}{r['steps_per_s']:>9.2f}{r['ratio_to_plain']:>9.2f}{r['matmul_floor_ms']:>13.2f}"
            f"{100 * r['fraction_of_matmul_floor']:>9.0f}%{r['flop_per_s'] / 1e9:>9.1f}"
            f"{100 * r['fraction_of_peak']:>8.0f}%"
        )


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="fmnist-ssl")
    ap.add_argument("--steps", type=int, default=600, help="training steps of each whole process")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of whole processes (0: part 2 only)")
    ap.add_argument("--variants", default="bf16", help="comma list of: bf16, plain_bf16, passive")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a config override for all"
    )
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per process")
    ap.add_argument("--skip-step", action="store_true", help="skip part 2 (the step alone)")
    ap.add_argument("--step-steps", type=int, default=20, help="steps per timed block in part 2")
    ap.add_argument("--step-blocks", type=int, default=5, help="timed blocks per runner in part 2")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = ap.parse_args(argv)
    args.variants = {v.strip() for v in args.variants.split(",") if v.strip()}
    machine = machine_info(torch.device(args.device))
    result: dict = {"machine": machine, "preset": args.preset, "steps": args.steps, "repeats": args.repeats}
    if args.repeats > 0:
        result["whole_process"] = whole_processes(args)
        summary = result["whole_process"]["summary"]
        result["best_default_ratio"] = summary["ours"]["ratio_to_plain"]
        result["target_ratio"] = TARGET_RATIO
        result["target_met"] = result["best_default_ratio"] >= TARGET_RATIO
    if not args.skip_step:
        result["step"] = step_alone(args)
        result["target_fraction_of_peak"] = TARGET_FRACTION
    machine["load_average_end"] = list(os.getloadavg())
    print_report(result)
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
