"""The files of a run folder (README, "A run folder"), and nothing else: paths, ``config.json``,
``metrics.jsonl``, ``summary.json``, the sample grids in ``samples/`` and ``curves.png``.

Every file is written atomically (:mod:`improved_gan.training.checkpoint`), except ``metrics.jsonl``, which is
appended one JSON line per evaluation: a line cut by a kill is dropped when read back (:func:`read_metrics`).
The checkpoints themselves (``checkpoints/last.pt``, ``generator.pt``) are written by the schedule
(:mod:`improved_gan.training.schedule`), which knows when the training state is consistent.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from improved_gan.errors import CheckpointError
from improved_gan.training.checkpoint import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    storage_error,
)
from improved_gan.training.config import Config, from_dict
from improved_gan.training.images import save_grid, save_scatter

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from improved_gan.sampling import GRID_SEED as SAMPLE_SEED  # fixed z for the sample grids (one place)


class RunFolder:
    """Paths of a run folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.config = self.root / "config.json"
        self.metrics = self.root / "metrics.jsonl"
        self.summary = self.root / "summary.json"
        self.samples = self.root / "samples"
        self.checkpoints = self.root / "checkpoints"
        self.last = self.checkpoints / "last.pt"
        self.generator = self.root / "generator.pt"
        self.curves = self.root / "curves.png"


def json_safe(row: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinities (e.g. ``mode_kl`` with no high-quality sample) become null: JSON has no NaN."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


# ------------------------------------------------------------------------------------------- config.json
def read_run_config(root: str | Path) -> tuple[Config, dict[str, Any]]:
    """The :class:`Config` and the ``run`` section (world size, data shape, time budget) of a run folder."""
    folder = RunFolder(root)
    if not folder.config.is_file():
        raise CheckpointError(f"{folder.root}: not a run folder (no config.json)")
    try:
        raw = json.loads(folder.config.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{folder.config}: not valid JSON ({exc.msg})") from None
    if not isinstance(raw, dict) or "run" not in raw:
        raise CheckpointError(f"{folder.config}: not an improved-gan run configuration")
    return from_dict(raw), raw["run"]


def start_folder(folder: RunFolder, cfg: Config, run: dict[str, Any]) -> None:
    """Create the folder of a new run: ``config.json`` (the configuration plus its ``run`` section), an empty
    ``metrics.jsonl``, ``samples/`` and ``checkpoints/``; a ``summary.json`` of an earlier attempt is removed."""
    folder.root.mkdir(parents=True, exist_ok=True)
    folder.samples.mkdir(exist_ok=True)
    folder.checkpoints.mkdir(exist_ok=True)
    atomic_write_json(folder.config, {**cfg.to_dict(), "run": run})
    atomic_write_text(folder.metrics, "")
    if folder.summary.exists():
        folder.summary.unlink()


def set_time_budget(folder: RunFolder, minutes: float | None) -> None:
    """Record the run's (total) time budget in the ``run`` section of ``config.json``."""
    raw = json.loads(folder.config.read_text())
    raw["run"]["time_budget_minutes"] = minutes
    atomic_write_json(folder.config, raw)


# ----------------------------------------------------------------------------- metrics.jsonl, summary.json
def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl`` (one per evaluation); a line cut by a kill ends the list."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a kill: drop it and what follows
    return rows


def append_metrics(folder: RunFolder, row: dict[str, Any]) -> None:
    try:
        with open(folder.metrics, "a") as f:
            f.write(json.dumps(json_safe(row)) + "\n")
    except OSError as exc:
        raise storage_error(folder.metrics, exc) from None


def keep_metrics_through(folder: RunFolder, step: int) -> None:
    """Drop the rows after ``step`` (evaluations of steps a resumed run repeats from its checkpoint)."""
    rows = [r for r in read_metrics(folder.metrics) if r.get("step", 0) <= step]
    atomic_write_text(folder.metrics, "".join(json.dumps(r) + "\n" for r in rows))


def read_summary(folder: RunFolder) -> dict[str, Any]:
    """``summary.json`` as a dict; ``{}`` when absent or unreadable (a run that is not finished)."""
    if not folder.summary.is_file():
        return {}
    try:
        out = json.loads(folder.summary.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return out if isinstance(out, dict) else {}


def write_summary(folder: RunFolder, summary: dict[str, Any]) -> None:
    atomic_write_json(folder.summary, json_safe(summary))


# --------------------------------------------------------------------------------------------- samples/
def write_samples(trainer, to_unit, folder: RunFolder) -> None:
    """``samples/step_XXXXXXX.png`` (and a copy as ``samples/latest.png``) from a fixed z: an image grid of
    ``train.sample_grid`` samples, or for a 2-D mixture a scatter plot of 2,000 points with the modes marked."""
    cfg = trainer.cfg
    path = folder.samples / f"step_{trainer.step:07d}.png"
    if trainer.data.toy is not None:
        pts = trainer.generate(2000, seed=SAMPLE_SEED)
        save_scatter(pts, path, centres=trainer.data.toy.centres, title=f"{cfg.preset}, step {trainer.step}")
    elif cfg.train.sample_grid > 0:
        save_grid(to_unit(trainer.generate(cfg.train.sample_grid, seed=SAMPLE_SEED)), path)
    else:
        return
    atomic_write_bytes(folder.samples / "latest.png", path.read_bytes())


# ------------------------------------------------------------------------------------------- curves.png
_NOT_PLOTTED = {"step", "wall_seconds", "images_per_second", "lr", "test_error"}
_FRACTION_WORDS = {"accuracy", "precision", "recall", "quality"}
_DISTANCE_WORDS = {"fid", "fd", "kid", "kl", "distance"}


def _panel_of(key: str, values: list[float]) -> tuple[str, str]:
    """``(panel id, panel title)`` of a metrics.jsonl key: one panel for the losses, one for numbers in [0, 1]
    (accuracies, precision, recall, fractions), one for the scores (Inception-score formula, 1 to the number of
    classes), and one of its own for every distance (FID, KID, ...) and any other number."""
    words = set(key.split("_"))
    if key.startswith("loss_"):
        return "losses", "losses (mean since the previous evaluation)"
    if words & _DISTANCE_WORDS:
        return key, f"{key} (lower is better)"
    if "score" in words:
        return "scores", "scores (higher is better)"
    if words & _FRACTION_WORDS or all(0.0 <= v <= 1.0 for v in values):
        return "fractions", "accuracy, precision, recall (0 to 1)"
    return key, key


def curves_figure(rows: list[dict[str, Any]], title: str) -> Figure | None:
    """The figure of ``curves.png``: small multiples against the step, one panel per family of numbers in
    ``rows`` (:func:`_panel_of`), every point marked (a run with one evaluation shows one marker per curve), a
    distance on a log axis where its values span more than a factor of 30. Numbers with no finite value and the
    ``*_std`` columns are left out; a panel exists only for what is plotted. ``None`` when nothing is."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    steps = [r.get("step") for r in rows]
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    panels: dict[str, tuple[str, list[tuple[str, list[float]]]]] = {}
    for key in keys:
        if key in _NOT_PLOTTED or key.endswith("_std"):
            continue
        values = [_as_float(r.get(key)) for r in rows]
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            continue
        pid, ptitle = _panel_of(key, finite)
        panels.setdefault(pid, (ptitle, []))[1].append((key, values))
    if not panels:
        return None
    order = sorted(panels, key=lambda p: {"losses": 0, "fractions": 1, "scores": 2}.get(p, 3))
    ncols = min(3, len(order))
    nrows = math.ceil(len(order) / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.2 * nrows + 0.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    marker_size = 4 if len(rows) <= 30 else 2
    for i, pid in enumerate(order):
        ptitle, curves = panels[pid]
        ax = fig.add_subplot(nrows, ncols, i + 1)
        for key, values in curves:
            ax.plot(steps, values, marker="o", ms=marker_size, linewidth=1.2, label=key)
        finite = [v for _, values in curves for v in values if math.isfinite(v)]
        if pid == "fractions":
            ax.set_ylim(min(-0.02, min(finite) - 0.02), max(1.02, max(finite) + 0.02))
        elif len(curves) == 1 and min(finite) > 0 and max(finite) / min(finite) > 30:
            ax.set_yscale("log")
        ax.set_title(ptitle, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def _as_float(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")


def plot_curves(rows: list[dict[str, Any]], path: Path, title: str) -> Figure | None:
    """Write ``curves.png`` (:func:`curves_figure`; matplotlib's Agg canvas, without pyplot, so the caller's
    matplotlib backend and figures are left alone) and return its figure; nothing is written when nothing is
    plotted (no rows)."""
    fig = curves_figure(rows, title)
    if fig is None:
        return None
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return fig
