"""The GPU check (``bash benchmarks/gpu_check.sh``): one JSON, one table; needs only this repository and PyTorch.

Usage: ``python3 benchmarks/gpu_check.py --out DIR [--device cuda|cpu] [--small] [--steps N]``.

For ``cifar10-ssl`` and ``fmnist-ssl`` on fake data of each set's format and size (``benchmarks/fake_data.py``),
three variants of the library's step, each built afresh:

- ``as-is``: PyTorch's default settings (float32 matrix products without TF32, cuDNN without the autotuner,
  NCHW): a run without the GPU options;
- ``tf32``: the configuration's GPU options as a run applies them (``train.tf32`` and ``train.cudnn_benchmark``,
  the defaults) plus ``train.channels_last=true`` (the conv nets on CUDA);
- ``bf16``: ``tf32`` plus ``train.precision=bf16`` (bfloat16 autocast of the forward passes).

Per variant: steps/s over ``--steps`` unsynchronised steps (CUDA events), FLOP/s (``FlopCounterMode``) against
the measured peak of the variant's arithmetic, bytes moved against the measured copy bandwidth, the roofline
bound ``max(FLOP / peak, bytes / bandwidth)`` and the fraction of it reached, GPU kernels per step and GPU-busy
fraction (``torch.profiler``), peak memory, one evaluation and one checkpoint (synchronous, and the time the
training thread is blocked with the asynchronous writer), a run of steps under
``torch.cuda.set_sync_debug_mode("error")``, the same step as a plain PyTorch loop, and the projected hours of the
preset's full schedule. Then a 2-process run on one device and a checkpoint written on the device and loaded on
the CPU. On the CPU the CUDA-only measures are null, each with its reason in ``null_reasons``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `improved_gan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from benchmarks import gpu_pieces as P  # noqa: E402
from benchmarks._common import machine_info  # noqa: E402
from benchmarks.fake_data import write_fake_data  # noqa: E402

PRESETS = {"cifar10-ssl": "cifar10", "fmnist-ssl": "fashion-mnist"}
VARIANTS = ("as-is", "tf32", "bf16")
SMALL_SETS = {
    # the CIFAR net costs ~1.5 GFLOP per image and step: a batch of 4 keeps a CPU step near a second
    "cifar10-ssl": ("data.batch_size=4", "model.init_batch=8", "data.labels_per_class=1"),
    "fmnist-ssl": ("data.batch_size=20", "model.init_batch=40"),
}
CUDA_ONLY = {
    "kernels_per_step": "needs CUDA (torch.profiler GPU kernel events)",
    "gpu_busy_fraction": "needs CUDA (torch.profiler GPU kernel events)",
    "peak_memory_bytes": "needs CUDA (caching-allocator statistics)",
    "no_sync": "needs CUDA (torch.cuda.set_sync_debug_mode)",
}


def log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Failures:
    """A part that raises is recorded (null in the JSON, its error as the reason, its traceback on stderr) and the
    check goes on: one broken part must not lose the other measurements of a one-shot GPU run. The exit status is
    1 when anything failed."""

    def __init__(self, result: dict) -> None:
        self.result = result
        self.errors: list[str] = result.setdefault("failures", [])

    def attempt(self, path: str, fn, default=None):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - recorded, reported, exit status 1
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            msg = f"{type(exc).__name__}: {first}"
            log(f"FAILED {path}: {msg}\n{traceback.format_exc()}")
            self.errors.append(f"{path}: {msg}")
            self.result["null_reasons"][path] = f"failed: {msg}"
            return default


def measure_variant(
    preset: str,
    variant: str,
    *,
    data_dir: Path,
    device: torch.device,
    sets: tuple,
    steps: int,
    peaks: dict,
    tmp: Path,
    failures: Failures,
) -> tuple[dict, P.StepHandle]:
    from improved_gan.training.device_options import AsyncCheckpointWriter, has_conv

    fast = variant != "as-is"
    vsets = sets + (("train.precision=bf16",) if variant == "bf16" else ())
    t0 = time.perf_counter()
    h = P.build_step(
        preset, data_dir=data_dir, device=str(device), sets=vsets, channels_last=fast, device_options=fast
    )
    P.sync(device)
    build_s = time.perf_counter() - t0
    conv = has_conv(h.D)
    cuda = device.type == "cuda"
    v: dict = {"steps_timed": steps, "build_seconds": build_s, "channels_last": h.trainer.channels_last}
    step_s = P.time_steps(h.step, device, steps, warmup=5 if cuda else 1)
    v["step_ms"], v["steps_per_s"] = step_s * 1e3, 1.0 / step_s
    v["flops_per_step"] = P.count_flops(h.step)
    v["bytes_per_step"], v["aten_ops_per_step"] = P.count_bytes(h.step)
    if variant == "bf16":
        peak, v["peak_kind"] = peaks["bf16_flops"], "bf16"
    elif fast or conv:  # cuDNN convolutions use TF32 by PyTorch's default (cudnn.allow_tf32)
        peak, v["peak_kind"] = peaks["tf32_flops"], "tf32"
    else:
        peak, v["peak_kind"] = peaks["fp32_flops"], "fp32"
    bw = peaks["copy_bytes_per_s"]
    v["peak_flops_used"] = peak
    v["flops_per_s"] = v["flops_per_step"] / step_s
    v["fraction_of_peak_flops"] = v["flops_per_s"] / peak
    v["bytes_per_s"] = v["bytes_per_step"] / step_s
    v["fraction_of_bandwidth"] = v["bytes_per_s"] / bw
    v["roofline_ms"] = 1e3 * max(v["flops_per_step"] / peak, v["bytes_per_step"] / bw)
    v["fraction_of_roofline"] = v["roofline_ms"] / v["step_ms"]
    where = f"presets.{preset}.variants.{variant}"
    if cuda:
        prof = failures.attempt(
            f"{where}.kernels_per_step",
            lambda: P.profile_kernels(h.step, device, steps=10, step_seconds=step_s),
            default={"kernels_per_step": None, "gpu_busy_fraction": None},
        )
        if prof["kernels_per_step"] is None:
            failures.result["null_reasons"][f"{where}.gpu_busy_fraction"] = "failed: see kernels_per_step"
        v.update(prof)
        v["peak_memory_bytes"] = failures.attempt(
            f"{where}.peak_memory_bytes", lambda: P.peak_memory(h.step, device)
        )
        check = failures.attempt(f"{where}.no_sync", lambda: P.no_sync_check(h.step, steps=3)) or {}
        v["no_sync"], v["no_sync_error"] = check.get("no_sync"), check.get("error")
    else:
        v.update(kernels_per_step=None, gpu_busy_fraction=None, peak_memory_bytes=None, no_sync=None)
    h.evaluate()
    v["eval_seconds"] = P.time_call(h.evaluate, device)
    folder = tmp / f"{preset}-{variant}"
    h.save(folder)
    v["checkpoint_seconds"] = P.time_call(lambda: h.save(folder), device)

    def async_checkpoint() -> float:
        with AsyncCheckpointWriter() as writer:
            return P.time_call(lambda: h.save(tmp / f"{preset}-{variant}-async", writer), device)

    v["checkpoint_async_blocking_seconds"] = failures.attempt(
        f"{where}.checkpoint_async_blocking_seconds", async_checkpoint
    )

    def plain_ms() -> float:
        plain = P.PlainStep(h, str(device), bf16=variant == "bf16", channels_last=h.trainer.channels_last)
        return 1e3 * P.time_steps(plain, device, steps, warmup=3 if cuda else 1)

    v["plain_step_ms"] = failures.attempt(f"{where}.plain_step_ms", plain_ms)
    if v["plain_step_ms"] is None:
        failures.result["null_reasons"][f"{where}.speedup_vs_plain"] = "failed: see plain_step_ms"
        v["speedup_vs_plain"] = None
    else:
        v["speedup_vs_plain"] = v["plain_step_ms"] / v["step_ms"]
    tc = h.cfg.train
    v["schedule"] = {"steps": tc.steps, "eval_every": tc.eval_every, "checkpoint_every": tc.checkpoint_every}
    v["projected_hours"] = P.project_hours(
        steps=tc.steps,
        step_seconds=step_s,
        eval_every=tc.eval_every,
        eval_seconds=v["eval_seconds"],
        checkpoint_every=tc.checkpoint_every,
        checkpoint_seconds=v["checkpoint_seconds"],
        startup_seconds=build_s,
    )
    v["projected_hours_async_checkpoints"] = P.project_hours(
        steps=tc.steps,
        step_seconds=step_s,
        eval_every=tc.eval_every,
        eval_seconds=v["eval_seconds"],
        checkpoint_every=tc.checkpoint_every,
        checkpoint_seconds=v["checkpoint_async_blocking_seconds"] or 0.0,
        startup_seconds=build_s,
    )
    return v, h


def run(args: argparse.Namespace) -> dict:
    from improved_gan.training.device_options import current_device_options, restore_device_options

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: DEVICE=cuda but torch.cuda.is_available() is False (use DEVICE=cpu)")
    steps = args.steps or (2 if args.small else 100)
    result: dict = {
        "schema": P.SCHEMA,
        "device": str(device),
        "small": args.small,
        "machine": machine_info(device),
        "presets": {},
        "null_reasons": {},
    }
    defaults = current_device_options()
    failures = Failures(result)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        dirs = write_fake_data(tmp / "data", small=args.small)
        result["fake_data_seconds"] = time.perf_counter() - t0
        log(f"fake data written in {result['fake_data_seconds']:.1f} s; measuring peaks")
        result["peaks"] = P.measure_peaks(device, small=args.small)
        handles = {}
        for preset, dataset in PRESETS.items():
            sets = SMALL_SETS[preset] if args.small else ()
            block: dict = {"data_dir_kind": "fake", "sets": list(sets), "variants": {}}
            for variant in VARIANTS:
                log(f"{preset} / {variant}")
                restore_device_options(defaults)
                where = f"presets.{preset}.variants.{variant}"
                try:
                    v, h = failures.attempt(
                        where,
                        functools.partial(
                            measure_variant,
                            preset,
                            variant,
                            data_dir=dirs[dataset],
                            device=device,
                            sets=sets,
                            steps=steps,
                            peaks=result["peaks"],
                            tmp=tmp,
                            failures=failures,
                        ),
                        default=(dict.fromkeys(P.REQUIRED_VARIANT), None),
                    )
                finally:
                    restore_device_options(defaults)
                block["variants"][variant] = v
                if variant == "as-is" and h is not None:
                    handles[preset] = (h, sets)
                if device.type != "cuda":
                    for key, why in CUDA_ONLY.items():
                        result["null_reasons"].setdefault(f"{where}.{key}", why)
            result["presets"][preset] = block
        log("checkpoint written on the device, loaded on the CPU (fmnist-ssl)")
        if "fmnist-ssl" in handles:
            h, sets = handles["fmnist-ssl"]
            result["checkpoint_to_cpu"] = failures.attempt(
                "checkpoint_to_cpu",
                lambda: P.checkpoint_to_cpu(
                    h, "fmnist-ssl", str(dirs["fashion-mnist"]), sets, tmp / "to_cpu"
                ),
            )
        else:
            result["checkpoint_to_cpu"] = None
            result["null_reasons"]["checkpoint_to_cpu"] = "failed: the fmnist-ssl as-is variant failed"
        del handles
        log("2 processes on one device (fmnist-ssl, the global batch split over the ranks)")
        global_batch = 20 if args.small else 100  # data.batch_size is the global batch: 10 or 50 per process
        two_sets = tuple(s for s in SMALL_SETS["fmnist-ssl"] if not s.startswith("data.batch_size"))
        two_sets = (*(two_sets if args.small else ()), f"data.batch_size={global_batch}")
        result["two_process"] = failures.attempt(
            "two_process",
            lambda: P.two_process_run(
                "fmnist-ssl",
                str(dirs["fashion-mnist"]),
                args.device,
                two_sets,
                steps=max(steps, 3 if args.small else 50),
            ),
        )
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="tiny data and batches (the CPU test)")
    ap.add_argument(
        "--steps", type=int, default=0, help="timed steps per measurement (default 100; small: 2)"
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    result = run(args)
    result["total_seconds"] = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gpu_check.json"
    problems = P.validate_result(result)
    result["schema_problems"] = problems
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(P.format_table(result))
    log(f"wrote {path} ({result['total_seconds']:.0f} s)")
    if problems or result["failures"]:
        print(
            f"error: gpu_check: {len(result['failures'])} part(s) failed, {len(problems)} schema problem(s); "
            f"see {path} (failures, schema_problems)",
            file=sys.stderr,
        )
        sys.exit(1)
    return result


if __name__ == "__main__":
    main()
