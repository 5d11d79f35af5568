"""Semi-supervised quality of ``fmnist-ssl`` (100 labels, real Fashion-MNIST) after a fixed wall-clock budget.

Usage: ``python benchmarks/ssl_quality.py [--minutes 10] [--seeds 1,2,3] [--json PATH] [--threads T]``.

For every seed (the run seed: parameter init, data order, noise; the labelled subset stays the preset's,
``data.label_seed = 1``, unless ``--vary-labels``):

- ``gan``: :func:`improved_gan.training.run.train` of the preset with ``time_budget=minutes`` in a temporary
  folder; its ``summary.json`` gives ``test_accuracy`` (the evaluation EMA of D) and ``test_accuracy_raw``
  (D's current parameters), both with D's noise off.
- ``supervised``: the SAME discriminator (a :class:`~improved_gan.training.trainer.Trainer` of the same
  configuration: the same data-dependent init, the same 100 labelled examples, ReferenceAdam with the same
  settings, the same EMA) trained on the 100 labels alone with cross-entropy, one full shuffled labelled batch
  per step, for the same budget or ``--sup-steps`` steps, whichever comes first, and evaluated by the same
  ``Trainer.test_accuracy`` (noise off). Two variants: ``supervised_noise`` keeps D's Gaussian noise on during
  training (the GAN's D has it; it is a regulariser), ``supervised_plain`` turns it off.

Target (issue 4): at least 80% test accuracy (EMA D) after 10 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `improved_gan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import machine_info, write_json  # noqa: E402
from improved_gan.data import EpochBatcher  # noqa: E402
from improved_gan.nn import GaussianNoise  # noqa: E402
from improved_gan.training.config import Config, override  # noqa: E402
from improved_gan.training.presets import get_preset  # noqa: E402
from improved_gan.training.run import load_train_data, train  # noqa: E402
from improved_gan.training.trainer import Trainer  # noqa: E402

TARGET_ACCURACY = 0.80
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "ssl_quality.json"


def run_gan(cfg: Config, *, minutes: float, data_dir: str | None) -> dict:
    """Train the preset for ``minutes`` in a temporary folder; the fields of its ``summary.json``."""
    with tempfile.TemporaryDirectory(prefix="ssl_quality_") as tmp:
        out = Path(tmp) / "run"
        train(cfg, out, data_dir=data_dir, time_budget=minutes, progress=False)
        summary = json.loads((out / "summary.json").read_text())
    keys = ("test_accuracy", "test_accuracy_raw", "steps", "wall_seconds", "images_per_second", "labels")
    return {k: summary.get(k) for k in keys}


def run_supervised(
    cfg: Config, data, *, minutes: float, max_steps: int, eval_every: int, noise: bool
) -> dict:
    """Cross-entropy on the labelled examples alone, with the GAN run's discriminator, optimizer and EMA."""
    trainer = Trainer(cfg, data)
    D = trainer.D
    if not noise:
        for m in D.modules():
            if isinstance(m, GaussianNoise):
                m.sigma = 0.0  # GaussianNoise is the identity at sigma 0
    bs = cfg.data.batch_size
    batcher = EpochBatcher(len(trainer.lab_idx), bs, seed=cfg.seed, drop_last=False)
    x_all, y_all = data.train_x[trainer.lab_idx], data.train_y[trainer.lab_idx]  # (L, 1, 28, 28), (L,)
    curve, steps, train_s = [], 0, 0.0
    start = time.perf_counter()
    while steps < max_steps and time.perf_counter() - start < minutes * 60.0:
        t0 = time.perf_counter()
        D.train()
        idx = batcher.next_indices()  # (B,)
        loss = F.cross_entropy(D(x_all[idx])[0], y_all[idx])
        trainer.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        trainer.opt_d.step()
        trainer.ema.update()
        steps += 1
        train_s += time.perf_counter() - t0
        if steps % eval_every == 0:
            curve.append({"step": steps, "loss": loss.item(), "test_accuracy": trainer.test_accuracy()})
    return {
        "test_accuracy": trainer.test_accuracy(use_ema=True),
        "test_accuracy_raw": trainer.test_accuracy(use_ema=False),
        "steps": steps,
        "train_seconds": round(train_s, 3),
        "final_loss": loss.item(),
        "curve": curve,
    }


def summarize(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget per run")
    ap.add_argument("--seeds", default="1,2,3", help="comma-separated run seeds")
    ap.add_argument("--vary-labels", action="store_true", help="also use the seed as data.label_seed")
    ap.add_argument("--sup-steps", type=int, default=3000, help="step cap of the supervised baselines")
    ap.add_argument("--sup-eval-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]

    base = get_preset("fmnist-ssl")
    data, _ = load_train_data(base, data_dir=args.data_dir, device="cpu")
    rows = []
    for seed in seeds:
        sets = [f"seed={seed}"] + ([f"data.label_seed={seed}"] if args.vary_labels else [])
        cfg = override(base, sets)
        row = {"seed": seed, "gan": run_gan(cfg, minutes=args.minutes, data_dir=args.data_dir)}
        for name, noise in (("supervised_noise", True), ("supervised_plain", False)):
            row[name] = run_supervised(
                cfg,
                data,
                minutes=args.minutes,
                max_steps=args.sup_steps,
                eval_every=args.sup_eval_every,
                noise=noise,
            )
        rows.append(row)
        accs = ", ".join(f"{k} {row[k]['test_accuracy']:.4f}" for k in row if k != "seed")
        print(f"seed {seed}: {accs}", flush=True)

    methods = ("gan", "supervised_noise", "supervised_plain")
    result = {
        "machine": machine_info(torch.device("cpu")),
        "preset": base.preset,
        "minutes": args.minutes,
        "seeds": seeds,
        "vary_labels": args.vary_labels,
        "runs": rows,
        "summary": {
            m: {k: summarize([r[m][k] for r in rows]) for k in ("test_accuracy", "test_accuracy_raw")}
            for m in methods
        },
        "target_accuracy": TARGET_ACCURACY,
    }
    result["target_met"] = result["summary"]["gan"]["test_accuracy"]["mean"] >= TARGET_ACCURACY

    print(
        f"fmnist-ssl, 100 labels, {args.minutes:g} min per run, seeds {seeds}, "
        f"{torch.get_num_threads()} thread(s)"
    )
    print(f"{'method':<18}{'EMA acc mean':>13}{'std':>8}{'min':>8}{'max':>8}{'raw acc mean':>14}{'steps':>8}")
    for m in methods:
        s, raw = result["summary"][m]["test_accuracy"], result["summary"][m]["test_accuracy_raw"]
        steps = statistics.fmean(r[m]["steps"] for r in rows)
        print(
            f"{m:<18}{s['mean']:>13.4f}{s['std']:>8.4f}{s['min']:>8.4f}{s['max']:>8.4f}"
            f"{raw['mean']:>14.4f}{steps:>8.0f}"
        )
    verdict = "met" if result["target_met"] else "NOT met"
    print(f"target: gan EMA accuracy >= {TARGET_ACCURACY:.2f} after {args.minutes:g} min: {verdict}")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
