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
- equal time: at the times the faster precision (the smaller mean time to the last common step) reached each of
  its evaluated steps (mean over seeds), each run's metric at its last evaluation at or before that time, mean
  +- std per precision, and the mean step it had reached.

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


def _fmt(s: dict, digits: int) -> str:
    if not s["n"]:
        return "-"
    return f"{s['mean']:.{digits}f} +- {s['std']:.{digits}f}"


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
    equal_time = []
    for times in wall:
        t = times[faster]["mean"]
        entry = {"seconds": t, "clock_of": faster, "clock_step": times["step"]}
        for p, group in by_prec.items():
            rows = [_at_time(r["rows"], t) for r in group]
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
    faster = table["faster"]
    print(f"\nequal time: each run's last evaluation at or before the time {faster} reached each step\n")
    print("| seconds | precision | step reached | " + " | ".join(metrics) + " |")
    print("|---" * (3 + len(metrics)) + "|")
    for e in table["equal_time"]:
        for p in PRECISIONS:
            cells = [_fmt(e[p][m], _digits(m)) for m in metrics]
            print(f"| {e['seconds']:.0f} | {p} | {_fmt(e[p]['step'], 0)} | " + " | ".join(cells) + " |")


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
