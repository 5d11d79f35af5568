"""``torch.compile`` of the ``fmnist-ssl`` step against eager, on the current device.

Usage: ``python benchmarks/compile_step.py [--modes default] [--steps 20] [--repeats 3] [--device cpu]
[--precision fp32] [--json PATH]``.

For each mode of ``train.compile`` (``off`` is eager), a Trainer of the preset is built and its first step
timed (that is where compilation happens: the compile cost of a run), then the runners' steps are timed in
interleaved blocks (``benchmarks/ssl_step.py``'s ``interleaved``). Prints the compile seconds and steps/s per
mode with the ratio to eager, and writes JSON to ``benchmarks/results/compile_step.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `improved_gan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import machine_info, write_json  # noqa: E402
from benchmarks.ssl_step import interleaved  # noqa: E402
from improved_gan.training.config import override  # noqa: E402
from improved_gan.training.presets import get_preset  # noqa: E402
from improved_gan.training.run import load_train_data  # noqa: E402
from improved_gan.training.trainer import Trainer  # noqa: E402

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "compile_step.json"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="fmnist-ssl")
    ap.add_argument("--modes", default="default", help="comma list of default, reduce-overhead")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    base = get_preset(args.preset)
    data, _ = load_train_data(base, data_dir=args.data_dir, device=args.device)
    runners, first = {}, {}
    for mode in ["off", *[m.strip() for m in args.modes.split(",") if m.strip()]]:
        cfg = override(base, [f"train.compile={mode}", f"train.precision={args.precision}"])
        t = Trainer(cfg, data, device=args.device)

        def step(t=t):
            t.train_step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        t0 = time.perf_counter()
        step()
        step()  # the G step's D pass (D frozen) is a second graph
        first[mode] = time.perf_counter() - t0
        runners[mode] = step
        print(f"  {mode}: first two steps {first[mode]:.1f} s", file=sys.stderr, flush=True)
    times = interleaved(runners, steps=args.steps, repeats=args.repeats, warmup=2)
    rates = {m: args.steps / statistics.median(ts) for m, ts in times.items()}
    result = {
        "machine": {**machine_info(device), "load_average_end": list(os.getloadavg())},
        "preset": args.preset,
        "precision": args.precision,
        "first_two_steps_seconds": first,
        "steps_per_s": rates,
        "ratio_to_eager": {m: r / rates["off"] for m, r in rates.items()},
        "block_seconds": times,
    }
    m = result["machine"]
    print(
        f"{args.preset} step, {args.precision}, {m['device']}, {m['torch_threads']} thread(s), load "
        f"{m['load_average_1_5_15_min'][0]:.1f} -> {m['load_average_end'][0]:.1f}"
    )
    print(f"{'train.compile':<18}{'first 2 steps s':>16}{'steps/s':>9}{'x eager':>9}")
    for mode in rates:
        print(f"{mode:<18}{first[mode]:>16.1f}{rates[mode]:>9.2f}{result['ratio_to_eager'][mode]:>9.2f}")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
