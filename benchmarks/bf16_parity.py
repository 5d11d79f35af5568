"""fp32 against bf16 (``train.precision``) at equal steps and at equal wall time, from the run folders.

Usage: ``python benchmarks/bf16_parity.py RUN_DIR [RUN_DIR ...] [--json PATH]``.

The runs are started separately: each preset and seed once per precision, the two precisions of one seed side
by side (2 processes, one thread each, so that both see the same machine load), for example::

    OMP_NUM_THREADS=1 improved-gan train fmnist-ssl --seed S --steps 1000 --eval-every 250 \\
        --checkpoint-every 1000 --set train.precision=P --quiet --out runs/fmnist-ssl-P-sS
    OMP_NUM_THREADS=1 improved-gan train fmnist-gan --seed S --steps 600 --eval-every 200 \\
        --checkpoint-every 600 --set train.eval_samples=2000 --set train.precision=P --quiet \\
        --out runs/fmnist-gan-P-sS

Runs are grouped by preset and precision (read from each folder's ``config.json``); everything else is read from
``metrics.jsonl`` (a run stopped early contributes the rows it wrote). For each preset this prints and writes:

- equal steps: for every evaluated step, each metric's mean +- std over the seeds per precision (the metrics:
  ``test_accuracy`` for semi-supervised presets; ``classifier_score``, ``classifier_fid``,
  ``classifier_precision``, ``classifier_recall`` and ``test_accuracy`` for ``fmnist-gan``);
- wall time: seconds to each evaluated step (the run's clock, evaluations included), mean +- std per precision;
- equal time, per seed: at the time the faster precision's run (the smaller mean time to the last common step)
  of a seed reached each evaluated step, each run of that seed's metric at its last evaluation at or before
  that time (the two precisions of a seed ran side by side, so they share the machine's load), then mean +- std
  over seeds per precision, and the mean step each had reached;
- the speed ratio: fp32 seconds / bf16 seconds to the last common step, per seed, mean +- std.

Rows past the last step that every run of the preset reached are dropped (a run stopped by hand after its
planned budget would otherwise be compared over a longer time).

The JSON (default ``benchmarks/results/bf16_parity.json``) holds the tables and every run's rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "bf16_parity.json"
METRICS = {
    "fmnist-ssl": ["test_accuracy"],
    "fmnist-gan": [
        "classifier_score",
        "classifier_fid",
        "classifier_precision",
        "classifier_recall",
        "test_accuracy",
    ],
}
DEFAULT_METRICS = ["test_accuracy"]
PRECISIONS = ("fp32", "bf16")


def _stats(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values) if values else None,
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
        "values": values,
    }


def _fmt(s: dict, digits: int, runs: int | None = None) -> str:
    """``mean +- std``; ``(n=k)`` added when only k of ``runs`` runs have a value."""
    if not s["n"]:
        return "-"
    text = f"{s['mean']:.{digits}f} +- {s['std']:.{digits}f}"
    return text + (f" (n={s['n']})" if runs is not None and s["n"] < runs else "")


def _digits(metric: str) -> int:
    return 1 if metric == "classifier_fid" else 3 if metric.startswith("classifier") else 4


def _read(run: Path) -> dict:
    cfg = json.loads((run / "config.json").read_text())
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return {
        "path": str(run),
        "preset": cfg["preset"],
        "seed": cfg["seed"],
        "precision": cfg["train"]["precision"],
        "rows": rows,
    }


def _at_time(rows: list[dict], t: float) -> dict | None:
    """The last row written at or before ``t`` seconds of the run's clock."""
    before = [r for r in rows if r["wall_seconds"] <= t]
    return before[-1] if before else None


def compare(runs: list[dict]) -> dict:
    """The equal-steps, wall-time and equal-time tables of one preset's runs (both precisions)."""
    preset = runs[0]["preset"]
    metrics = METRICS.get(preset, DEFAULT_METRICS)
    last_common = min(max(row["step"] for row in r["rows"]) for r in runs)
    runs = [{**r, "rows": [x for x in r["rows"] if x["step"] <= last_common]} for r in runs]
    by_prec = {p: [r for r in runs if r["precision"] == p] for p in PRECISIONS}
    steps = sorted(set.intersection(*({row["step"] for row in r["rows"]} for r in runs)))
    equal_steps, wall = [], []
    for step in steps:
        entry, times = {"step": step}, {"step": step}
        for p, group in by_prec.items():
            rows = [next(x for x in r["rows"] if x["step"] == step) for r in group]
            entry[p] = {m: _stats([x[m] for x in rows if x.get(m) is not None]) for m in metrics}
            times[p] = _stats([x["wall_seconds"] for x in rows])
        equal_steps.append(entry)
        wall.append(times)
    faster = min(PRECISIONS, key=lambda p: wall[-1][p]["mean"])
    # per seed run side by side: fp32 seconds / bf16 seconds to the last common step (same machine load)
    ratios = []
    for a in by_prec["fp32"]:
        b = next((r for r in by_prec["bf16"] if r["seed"] == a["seed"]), None)
        if b is not None:
            ratios.append(a["rows"][-1]["wall_seconds"] / b["rows"][-1]["wall_seconds"])
    # equal time, per seed: the clock is the faster precision's run of that seed (run side by side with the other)
    pairs = [
        {p: next(r for r in by_prec[p] if r["seed"] == seed) for p in PRECISIONS}
        for seed in sorted({r["seed"] for r in by_prec["fp32"]} & {r["seed"] for r in by_prec["bf16"]})
    ]
    equal_time = []
    for step in steps:
        clocks = [
            next(x for x in pair[faster]["rows"] if x["step"] == step)["wall_seconds"] for pair in pairs
        ]
        entry = {"seconds": _stats(clocks), "clock_of": faster, "clock_step": step}
        for p in PRECISIONS:
            rows = [_at_time(pair[p]["rows"], t) for pair, t in zip(pairs, clocks)]
            rows = [x for x in rows if x is not None]
            entry[p] = {m: _stats([x[m] for x in rows if x.get(m) is not None]) for m in metrics}
            entry[p]["step"] = _stats([x["step"] for x in rows])
        equal_time.append(entry)
    seeds = {p: sorted(r["seed"] for r in group) for p, group in by_prec.items()}
    return {
        "preset": preset,
        "metrics": metrics,
        "seeds": seeds,
        "equal_steps": equal_steps,
        "wall_seconds": wall,
        "equal_time": equal_time,
        "faster": faster,
        "speed_ratio_fp32_over_bf16": _stats(ratios),
    }


def _print(table: dict) -> None:
    preset, metrics = table["preset"], table["metrics"]
    print(f"\n## {preset}: seeds fp32 {table['seeds']['fp32']}, bf16 {table['seeds']['bf16']}")
    print("\nequal steps (mean +- std over seeds; seconds: the run's clock, evaluations included)\n")
    print("| step | precision | seconds | " + " | ".join(metrics) + " |")
    print("|---" * (3 + len(metrics)) + "|")
    for e, w in zip(table["equal_steps"], table["wall_seconds"]):
        for p in PRECISIONS:
            cells = [_fmt(e[p][m], _digits(m)) for m in metrics]
            print(f"| {e['step']} | {p} | {_fmt(w[p], 0)} | " + " | ".join(cells) + " |")
    ratio = table["speed_ratio_fp32_over_bf16"]
    print(
        f"\nfp32 seconds / bf16 seconds to step {table['equal_steps'][-1]['step']}, per seed: {_fmt(ratio, 3)}"
    )
    faster = table["faster"]
    print(
        f"\nequal time, per seed: each run's last evaluation at or before the time the {faster} run of its seed "
        "(run side by side) reached the step\n"
    )
    print(f"| {faster} step | precision | step reached | " + " | ".join(metrics) + " |")
    print("|---" * (3 + len(metrics)) + "|")
    for e in table["equal_time"]:
        for p in PRECISIONS:
            runs = len(table["seeds"][p])
            cells = [_fmt(e[p][m], _digits(m), runs) for m in metrics]
            step = _fmt(e[p]["step"], 0, runs)
            print(f"| {e['clock_step']} | {p} | {step} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = ap.parse_args(argv)
    groups: dict[str, list[dict]] = defaultdict(list)
    for run in args.runs:
        try:
            info = _read(run)
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            print(
                f"error: {run}: not a run folder with config.json and metrics.jsonl ({exc})", file=sys.stderr
            )
            raise SystemExit(2) from None
        groups[info["preset"]].append(info)
    tables = {}
    for preset, runs in groups.items():
        if not all(any(r["precision"] == p for r in runs) for p in PRECISIONS):
            print(f"error: {preset}: needs runs of both precisions (fp32 and bf16)", file=sys.stderr)
            raise SystemExit(2)
        tables[preset] = compare(runs)
        _print(tables[preset])
    result = {"tables": tables, "runs": [r for runs in groups.values() for r in runs]}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.json}")
    return result


if __name__ == "__main__":
    main()
