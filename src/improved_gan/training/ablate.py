"""``improved-gan ablate PRESET``: every ablation variant for every seed, then a table and a plot.

Runs go to ``OUT/<variant>/seed<k>``; a run with a ``summary.json`` is finished and skipped, a run with only a
checkpoint is resumed, so an interrupted ablation continues where it stopped. A stop request (SIGINT, SIGTERM,
SIGUSR1) ends the ablation after the current run's checkpoint; the same command continues it. A run that
diverges is recorded as such (its ``summary.json`` says ``diverged``), left out of the means and named under the
table; the other runs go on. The results are
``ablation.json`` (every run's summary, plus mean and population std per variant), ``ablation.md`` (a table in the
form of the paper's Table 3: variant, metric mean +- std over seeds, and a last row with the same metrics of real
data, the ceiling, at the preset's number of evaluation samples) and ``ablation.png`` (the main metric per variant
with error bars and the ceiling as a dashed line, and the first seed's latest samples of each variant side by
side). Where the ceiling cannot be computed (a metric's network is missing) the row says why.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from improved_gan.errors import ConfigError, DivergenceError, StopRequested, UserError
from improved_gan.metrics import real_data_ceiling, report_keys
from improved_gan.training.checkpoint import atomic_write_bytes, atomic_write_json, atomic_write_text
from improved_gan.training.config import override
from improved_gan.training.lifecycle import stop_requested, stop_requests
from improved_gan.training.presets import get_preset, variants_of
from improved_gan.training.run import resume, train
from improved_gan.training.run_folder import RunFolder


def _resolve_variant(name: str, known: tuple[str, ...], preset: str) -> str:
    """``-ls`` or ``ls`` (the sign may be left out, so ``--variants ls,mbf`` needs no ``=``) -> ``-ls``."""
    for candidate in (name, "-" + name, "+" + name):
        if candidate in known:
            return candidate
    raise ConfigError(f"--variants {name}: not a variant of {preset} (known: {', '.join(known)})")


def _label(variant: str) -> str:
    return "all techniques" if variant == "" else variant


def run_ablation(
    preset: str,
    out: str | Path,
    *,
    variants: tuple[str, ...] | None = None,
    seeds: int = 3,
    time_budget: float | None = None,
    steps: int | None = None,
    overrides: tuple[str, ...] = (),
    data_dir: str | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    base = get_preset(preset)
    known = variants_of(preset)
    if not known:
        raise ConfigError(
            f"preset {preset!r} has no ablation variants (try fmnist-gan, ring8-gan, grid25-gan)"
        )
    chosen = known if variants is None else tuple(_resolve_variant(v, known, preset) for v in variants)
    out = Path(out)
    names = [""] + [v for v in chosen if v != ""]
    sets = list(overrides) + ([f"train.steps={steps}"] if steps else [])
    runs: dict[str, list[dict[str, Any]]] = {}
    with stop_requests():
        for v in names:
            cfg_v = get_preset(preset + v) if v else base
            for seed in range(1, seeds + 1):
                cfg = override(cfg_v, sets + [f"seed={seed}"])
                folder = RunFolder(out / (v or "all") / f"seed{seed}")
                summary = _run_one(cfg, folder, data_dir, device, time_budget, progress)
                runs.setdefault(v, []).append({"seed": seed, "folder": str(folder.root), **summary})
    keys = report_keys(base.data.dataset)  # the registry's default metrics; the first one is plotted
    result = _aggregate(preset, runs, keys)
    n_eval = override(base, sets).train.eval_samples
    result["ceiling"] = _ceiling(base.data.dataset, keys, n_eval, data_dir, device)
    result["table"] = _table(preset, result, keys)
    atomic_write_json(out / "ablation.json", {k: v for k, v in result.items() if k != "table"})
    atomic_write_text(out / "ablation.md", result["table"] + "\n")
    _plot(out / "ablation.png", preset, result, keys)
    return result


def _run_one(cfg, folder: RunFolder, data_dir, device, time_budget, progress) -> dict[str, Any]:
    """One run of the ablation: its summary (read if finished, else resumed or trained)."""
    if folder.summary.exists():
        return json.loads(folder.summary.read_text())
    if stop_requested():  # a stop signal between two runs: start no new one
        raise StopRequested(stop_requested(), 0, str(folder.root), started=False)
    try:
        if folder.last.exists():  # interrupted: only what is left of the run's budget
            return resume(
                folder.root,
                data_dir=data_dir,
                device=device,
                time_budget=time_budget,
                budget="total",
                progress=progress,
            )
        return train(
            cfg, folder.root, data_dir=data_dir, device=device, time_budget=time_budget, progress=progress
        )
    except DivergenceError as exc:
        print(f"warning: {exc}; counted as diverged", file=sys.stderr)
        return json.loads(folder.summary.read_text()) if folder.summary.exists() else {"status": "diverged"}


def _aggregate(preset: str, runs: dict[str, list[dict[str, Any]]], keys: tuple[str, ...]) -> dict[str, Any]:
    variants = []
    for v, rows in runs.items():
        stats = {}
        for k in keys:
            vals = [float(r[k]) for r in rows if isinstance(r.get(k), (int, float))]
            if vals:
                stats[k] = {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "values": vals}
        variants.append({"variant": _label(v), "preset": preset + v, "runs": rows, "metrics": stats})
    return {"preset": preset, "variants": variants}


def _ceiling(
    dataset: str, keys: tuple[str, ...], n: int, data_dir: str | None, device: str
) -> dict[str, Any]:
    """The report metrics of real data (``real_data_ceiling``) at ``n`` samples, or the reason they are missing."""
    try:
        values = real_data_ceiling(dataset, num_samples=n, data_dir=data_dir, device=device)
    except UserError as exc:  # e.g. no classifier or Inception weights on this machine
        return {"num_samples": n, "error": str(exc)}
    return {"num_samples": n, **{k: float(values[k]) for k in keys if k in values}}


def _table(preset: str, result: dict[str, Any], keys: tuple[str, ...]) -> str:
    head = "| variant | " + " | ".join(keys) + " |"
    lines = [f"Ablation of `{preset}` (mean +- std over seeds)", "", head, "|" + "---|" * (len(keys) + 1)]
    for row in result["variants"]:
        cells = []
        for k in keys:
            s = row["metrics"].get(k)
            cells.append(f"{s['mean']:.3f} +- {s['std']:.3f}" if s else "n/a")
        lines.append(f"| {row['variant']} | " + " | ".join(cells) + " |")
    ceiling = result.get("ceiling") or {}
    label = f"real data ({ceiling.get('num_samples')} samples)"
    if "error" in ceiling:
        lines.append(f"| {label} | " + " | ".join(["n/a"] * len(keys)) + " |")
        lines += ["", f"Ceiling not computed: {ceiling['error']}"]
    elif ceiling:
        cells = [f"{ceiling[k]:.3f}" if k in ceiling else "n/a" for k in keys]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    diverged = [
        f"{row['variant']} seed {r['seed']}" + (f" (step {r['diverged']['step']})" if "diverged" in r else "")
        for row in result["variants"]
        for r in row["runs"]
        if r.get("status") == "diverged"
    ]
    if diverged:
        lines += ["", "Diverged (left out of the means): " + ", ".join(diverged)]
    return "\n".join(lines)


def _plot(path: Path, preset: str, result: dict[str, Any], keys: tuple[str, ...]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    rows = result["variants"]
    n = len(rows)
    fig = plt.figure(figsize=(max(6, 2.2 * n), 6), dpi=100)
    ax = fig.add_subplot(2, 1, 1)
    if keys:
        k = keys[0]
        means = [r["metrics"].get(k, {}).get("mean", np.nan) for r in rows]
        stds = [r["metrics"].get(k, {}).get("std", 0.0) for r in rows]
        ax.bar(range(n), means, yerr=stds, capsize=4, color="tab:blue", alpha=0.8)
        top = (result.get("ceiling") or {}).get(k)
        if top is not None:
            ax.axhline(top, color="k", linestyle="--", linewidth=1, label=f"real data: {top:.3f}")
            ax.legend(fontsize=8)
        ax.set_xticks(range(n), [r["variant"] for r in rows], fontsize=8)
        ax.set_ylabel(k)
        ax.set_title(f"{preset}: {k} per variant (mean +- std over seeds)", fontsize=10)
    for i, r in enumerate(rows):
        img_path = Path(r["runs"][0]["folder"]) / "samples" / "latest.png"
        sub = fig.add_subplot(2, n, n + i + 1)
        sub.axis("off")
        sub.set_title(r["variant"], fontsize=8)
        if img_path.exists():
            sub.imshow(np.asarray(Image.open(img_path).convert("RGB")))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
