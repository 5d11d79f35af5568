"""Accuracy against steps over seeds, from the run folders of equal-steps ``fmnist-ssl`` runs.

Usage: ``python benchmarks/ssl_curve.py RUN_DIR [RUN_DIR ...] [--label NAME] [--json PATH]``.

The runs are started separately, for example (one thread each, two at a time on 2 cores)::

    OMP_NUM_THREADS=1 improved-gan train fmnist-ssl --steps 15000 --seed S --eval-every 1500 \\
        --checkpoint-every 1500 --set optim.decay_start=0.5 --quiet --out runs/dec05_sS

Accuracy at a given step does not depend on the machine's load, so such runs measure what a time budget buys
once the step rate is known (steps = rate x budget). For every evaluated step this prints the mean, standard
deviation, minimum and maximum over the runs of ``test_accuracy`` (the evaluation EMA of D) and
``test_accuracy_raw``, read from each folder's ``metrics.jsonl``, and writes them to
``benchmarks/results/ssl_curve.json`` (or ``--json``) with each run's configuration differences and rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "ssl_curve.json"


def _stats(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--label", default="runs")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = ap.parse_args(argv)
    per_run = {}
    for run in args.runs:
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
        cfg = json.loads((run / "config.json").read_text())
        per_run[str(run)] = {"seed": cfg["seed"], "config": cfg, "rows": rows}
    steps = sorted({r["step"] for v in per_run.values() for r in v["rows"]})
    curve = []
    for step in steps:
        ema = [r["test_accuracy"] for v in per_run.values() for r in v["rows"] if r["step"] == step]
        raw = [r["test_accuracy_raw"] for v in per_run.values() for r in v["rows"] if r["step"] == step]
        curve.append({"step": step, "test_accuracy": _stats(ema), "test_accuracy_raw": _stats(raw)})
    print(f"{args.label}: {len(per_run)} run(s), seeds {sorted(v['seed'] for v in per_run.values())}")
    print(f"{'step':>7}{'n':>3}{'EMA mean':>10}{'std':>7}{'min':>8}{'max':>8}{'raw mean':>10}{'std':>7}")
    for c in curve:
        e, r = c["test_accuracy"], c["test_accuracy_raw"]
        print(
            f"{c['step']:>7}{e['n']:>3}{100 * e['mean']:>9.2f}%{100 * e['std']:>6.2f}{100 * e['min']:>7.2f}%"
            f"{100 * e['max']:>7.2f}%{100 * r['mean']:>9.2f}%{100 * r['std']:>6.2f}"
        )
    result = {"label": args.label, "curve": curve, "runs": per_run}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
