"""Gathering a sweep's table from its run folders: ``table.md``, ``table.csv``, ``table.json`` and ``table.png``.

Only the run folders are read (``summary.json``, and ``config.json`` for the data set), wherever the runs ran,
so the table of a SLURM sweep is gathered the same way as a local one. A run counts in the means when its
summary says ``finished`` or ``stopped_by_time_budget``; a diverged run is named under the table and left out;
a run without a summary is "missing" (failed, or not run yet). Spreads are the sample standard deviation over
seeds (n - 1 in the denominator); the paper's "+-" figures stand beside them as printed.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from improved_gan.sweeps import paper
from improved_gan.sweeps.launch import read_summary
from improved_gan.sweeps.matrix import METHOD_SSL, METHOD_SUPERVISED, RunSpec, TableSpec

_COUNTED = ("finished", "stopped_by_time_budget")


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0.0 for one value, NaN for none)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    m = sum(values) / n
    if n == 1:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))


def _run_record(spec: RunSpec) -> dict[str, Any]:
    s = read_summary(spec.folder)
    rec: dict[str, Any] = {"key": spec.key, "seed": spec.seed, "folder": str(spec.folder)}
    if s is None:
        rec["status"] = "missing"
        return rec
    rec["status"] = s.get("status", "finished")
    rec["steps"] = s.get("steps")
    rec["steps_planned"] = s.get("steps_planned")
    rec["wall_seconds"] = s.get("wall_seconds")
    if isinstance(s.get("test_error"), (int, float)):
        rec["error_pct"] = 100.0 * float(s["test_error"])
    elif isinstance(s.get("test_accuracy"), (int, float)):
        rec["error_pct"] = 100.0 * (1.0 - float(s["test_accuracy"]))
    if isinstance(s.get("test_accuracy_raw"), (int, float)):
        rec["error_raw_pct"] = 100.0 * (1.0 - float(s["test_accuracy_raw"]))
    if "labels" in s:
        rec["labels"] = s["labels"]
    rec["summary"] = {k: v for k, v in s.items() if isinstance(v, (int, float, str, bool))}
    return rec


def _cell(stats: dict[str, Any] | None, digits: int = 2) -> str:
    if not stats or stats.get("n", 0) == 0 or math.isnan(stats["mean"]):
        return "n/a"
    return f"{stats['mean']:.{digits}f} +- {stats['std']:.{digits}f} (n={stats['n']})"


def _steps_cell(runs: list[dict[str, Any]]) -> str:
    steps = sorted({r["steps"] for r in runs if r.get("steps") is not None})
    if not steps:
        return "n/a"
    return str(steps[0]) if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"


def _problems(runs: list[dict[str, Any]]) -> list[str]:
    return [f"{r['key']}: {r['status']}" for r in runs if r["status"] not in _COUNTED]


# --------------------------------------------------------------------------------------- error against labels
def gather_labels(table: TableSpec, specs: Sequence[RunSpec], meta: dict[str, Any]) -> dict[str, Any]:
    """The error-against-labels table of ``specs`` (see the module docstring) as a JSON-ready dict."""
    columns = list(dict.fromkeys(s.column for s in specs))
    methods = list(dict.fromkeys(s.row for s in specs))
    published = paper.PAPER_ERROR_PCT.get(table.paper or "", {})
    rows = []
    all_runs = []
    for col in columns:
        n_labels = int(col)
        row: dict[str, Any] = {"labels": n_labels, "methods": {}}
        for method in methods:
            runs = [_run_record(s) for s in specs if s.column == col and s.row == method]
            all_runs += runs
            vals = [r["error_pct"] for r in runs if r["status"] in _COUNTED and "error_pct" in r]
            m, sd = mean_std(vals)
            row["methods"][method] = {"mean": m, "std": sd, "n": len(vals), "values": vals, "runs": runs}
        if n_labels in published:
            row["paper"] = {"mean": published[n_labels][0], "std": published[n_labels][1]}
        rows.append(row)
    return {
        **meta,
        "table": table.name,
        "kind": "labels",
        "title": table.title,
        "unit": "test error %",
        "paper_source": paper.PAPER_SOURCE.get(table.paper or ""),
        "methods": methods,
        "rows": rows,
        "problems": _problems(all_runs),
        "note": table.note,
    }


def _table_head(note: str, result: dict[str, Any], head: list[str]) -> list[str]:
    """The first lines of a Markdown table: the bold title with ``note``, a blank line, the header row and rule."""
    return [f"**{result['title']}** ({note})", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]


def labels_markdown(result: dict[str, Any]) -> str:
    methods = result["methods"]
    ssl = [m for m in methods if m == METHOD_SSL] or methods[:1]
    others = [m for m in methods if m not in ssl]
    paper_head = f"paper ({result['paper_source'].split(' (')[0]})" if result.get("paper_source") else "paper"
    head = ["labels", f"ours: {ssl[0]}", paper_head] + [f"ours: {m}" for m in others] + ["steps per run"]
    lines = _table_head(
        f"{result['unit']}; ours: mean +- sample std over seeds, n = runs counted", result, head
    )
    for row in result["rows"]:
        p = row.get("paper")
        pcell = f"{p['mean']:.2f} +- {p['std']:.2f}" if p else "n/a"
        runs = [r for m in methods for r in row["methods"][m]["runs"]]
        cells = [str(row["labels"]), _cell(row["methods"][ssl[0]]), pcell]
        cells += [_cell(row["methods"][m]) for m in others]
        cells.append(_steps_cell(runs))
        lines.append("| " + " | ".join(cells) + " |")
    lines += _footer(result)
    return "\n".join(lines)


def _footer(result: dict[str, Any]) -> list[str]:
    out = [""]
    if result.get("paper_source"):
        out.append(f"Paper: {result['paper_source']}; its spread is over 10 runs with random label draws.")
    if result.get("note"):
        out.append(result["note"])
    budget = result.get("budget") or {}
    words = []
    if budget.get("steps"):
        words.append(f"{budget['steps']} steps")
    if budget.get("minutes"):
        words.append(f"{budget['minutes']:g} minutes")
    if words:
        out.append(f"Budget per run: {' or '.join(words)} (the preset's own schedule otherwise).")
    if result.get("command"):
        out.append(f"Command: `{result['command']}`")
    if result.get("problems"):
        out.append("Not counted: " + "; ".join(result["problems"]))
    return out


def labels_csv(result: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "table",
            "labels",
            "method",
            "error_pct_mean",
            "error_pct_std",
            "n",
            "values",
            "steps",
            "paper_error_pct_mean",
            "paper_error_pct_std",
        ]
    )
    for row in result["rows"]:
        p = row.get("paper") or {}
        for method, st in row["methods"].items():
            steps = ";".join(str(r.get("steps")) for r in st["runs"])
            w.writerow([result["table"], row["labels"], method, *_stat_cells(st, steps, p)])
    return buf.getvalue()


def _num(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def labels_plot(result: dict[str, Any], path: Path) -> None:
    """Error % against labels (log x): each of our methods with error bars, and the paper's figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=100)
    xs = [row["labels"] for row in result["rows"]]
    for i, method in enumerate(result["methods"]):
        m = [row["methods"][method]["mean"] for row in result["rows"]]
        s = [row["methods"][method]["std"] for row in result["rows"]]
        ax.errorbar(xs, m, yerr=s, marker="o", capsize=4, label=f"ours: {method}", color=f"C{i}")
    pr = [(row["labels"], row["paper"]) for row in result["rows"] if row.get("paper")]
    if pr:
        ax.errorbar(
            [x for x, _ in pr],
            [p["mean"] for _, p in pr],
            yerr=[p["std"] for _, p in pr],
            marker="s",
            capsize=4,
            linestyle="--",
            color="k",
            label="paper",
        )
    elif result.get("table", "").startswith("fmnist-table1"):
        ref = paper.PAPER_ERROR_PCT["mnist"]
        ax.errorbar(
            list(ref),
            [v[0] for v in ref.values()],
            yerr=[v[1] for v in ref.values()],
            marker="s",
            capsize=4,
            linestyle=":",
            color="0.5",
            label="paper, MNIST (another data set; for scale)",
        )
    ax.set_xscale("log")
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.minorticks_off()
    ax.set_xlabel("labelled examples")
    ax.set_ylabel("test error %")
    ax.set_title(result["title"], fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    _atomic_write(path, buf.getvalue())


# ------------------------------------------------------------------------------------------------- ablation
def _report_keys(specs: Sequence[RunSpec]) -> tuple[str, ...]:
    """The data set's report metrics (from the first run's ``config.json``), else the summaries' metric keys."""
    for s in specs:
        try:
            cfg = json.loads((Path(s.folder) / "config.json").read_text())
            from improved_gan.metrics import report_keys

            return tuple(report_keys(cfg["data"]["dataset"]))
        except Exception:  # noqa: BLE001 - fall back on the summaries below
            continue
    return ()


def gather_ablation(table: TableSpec, specs: Sequence[RunSpec], meta: dict[str, Any]) -> dict[str, Any]:
    """Table 3's form: one row per variant, the data set's report metrics mean +- std over seeds."""
    keys = _report_keys(specs)
    variants = list(dict.fromkeys(s.row for s in specs))
    rows, all_runs = [], []
    for v in variants:
        runs = [_run_record(s) for s in specs if s.row == v]
        all_runs += runs
        stats = {}
        for k in keys:
            vals = [
                float(r["summary"][k])
                for r in runs
                if r["status"] in _COUNTED and isinstance(r.get("summary", {}).get(k), (int, float))
            ]
            m, sd = mean_std(vals)
            stats[k] = {"mean": m, "std": sd, "n": len(vals), "values": vals}
        row = {"variant": v, "metrics": stats, "runs": runs}
        if table.paper == "table3" and v in paper.TABLE3_INCEPTION:
            row["paper"] = dict(zip(("mean", "std"), paper.TABLE3_INCEPTION[v]))
        rows.append(row)
    return {
        **meta,
        "table": table.name,
        "kind": "ablation",
        "title": table.title,
        "keys": list(keys),
        "paper_source": "Table 3 of the paper (Inception score, 50,000 samples)"
        if table.paper == "table3"
        else None,
        "paper_real_data": dict(zip(("mean", "std"), paper.TABLE3_INCEPTION["real data"]))
        if table.paper == "table3"
        else None,
        "rows": rows,
        "problems": _problems(all_runs),
        "note": table.note,
    }


def ablation_markdown(result: dict[str, Any]) -> str:
    keys = result["keys"]
    has_paper = result.get("paper_source") is not None
    head = ["variant"] + keys + (["paper: Inception score"] if has_paper else []) + ["steps per run"]
    lines = _table_head("ours: mean +- sample std over seeds, n = runs counted", result, head)
    for row in result["rows"]:
        cells = [row["variant"]] + [_cell(row["metrics"].get(k), 3) for k in keys]
        if has_paper:
            p = row.get("paper")
            cells.append(f"{p['mean']:.2f} +- {p['std']:.2f}" if p else "n/a")
        cells.append(_steps_cell(row["runs"]))
        lines.append("| " + " | ".join(cells) + " |")
    if has_paper and result.get("paper_real_data"):
        p = result["paper_real_data"]
        lines.append(
            "| real data (paper) | "
            + " | ".join(["n/a"] * len(keys))
            + f" | {p['mean']:.2f} +- {p['std']:.2f} | |"
        )
    lines += _footer(result)
    return "\n".join(lines)


def _stat_cells(st: dict[str, Any], steps: str, paper: dict[str, Any]) -> list[Any]:
    """The CSV cells after a row's key columns: mean, std, n, the values, steps, the paper's mean and std."""
    values = ";".join(f"{v:.4f}" for v in st["values"])
    return [
        _num(st["mean"]),
        _num(st["std"]),
        st["n"],
        values,
        steps,
        _num(paper.get("mean")),
        _num(paper.get("std")),
    ]


def ablation_csv(result: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ["table", "variant", "metric", "mean", "std", "n", "values", "steps", "paper_mean", "paper_std"]
    )
    for row in result["rows"]:
        p = row.get("paper") or {}
        steps = ";".join(str(r.get("steps")) for r in row["runs"])
        for k in result["keys"]:
            st = row["metrics"][k]
            w.writerow([result["table"], row["variant"], k, *_stat_cells(st, steps, p)])
    return buf.getvalue()


def ablation_plot(result: dict[str, Any], path: Path) -> None:
    """The first report metric per variant (ours, error bars) and, for Table 3, the paper's scores beside."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(rows)), 4.4), dpi=100)
    xs = list(range(len(rows)))
    if result["keys"]:
        k = result["keys"][0]
        ax.bar(
            [x - 0.2 for x in xs],
            [r["metrics"][k]["mean"] for r in rows],
            width=0.4,
            yerr=[r["metrics"][k]["std"] for r in rows],
            capsize=4,
            label=f"ours: {k}",
        )
        ax.set_ylabel(k)
    if result.get("paper_source"):
        ax.bar(
            [x + 0.2 for x in xs],
            [r.get("paper", {}).get("mean", math.nan) for r in rows],
            width=0.4,
            yerr=[r.get("paper", {}).get("std", 0.0) for r in rows],
            capsize=4,
            color="0.6",
            label="paper: Inception score",
        )
    ax.set_xticks(xs, [r["variant"] for r in rows], fontsize=8)
    ax.set_title(result["title"], fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    _atomic_write(path, buf.getvalue())


# -------------------------------------------------------------------------------------------------- writing
def write_table(
    table: TableSpec, specs: Sequence[RunSpec], out: Path, meta: dict[str, Any]
) -> dict[str, Any]:
    """Gather ``specs`` and write ``out/table.{md,csv,json,png}``; returns the JSON dict (plus ``markdown``)."""
    if table.kind == "labels":
        result = gather_labels(table, specs, meta)
        md, csv_text, plot = labels_markdown(result), labels_csv(result), labels_plot
    else:
        result = gather_ablation(table, specs, meta)
        md, csv_text, plot = ablation_markdown(result), ablation_csv(result), ablation_plot
    _atomic_write(out / "table.md", (md + "\n").encode())
    _atomic_write(out / "table.csv", csv_text.encode())
    _atomic_write(out / "table.json", (json.dumps(_finite(result), indent=2) + "\n").encode())
    plot(result, out / "table.png")
    return {**result, "markdown": md}


def _finite(x: Any) -> Any:
    """NaN -> None, so that table.json is strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


__all__ = ["METHOD_SUPERVISED", "mean_std", "write_table"]
