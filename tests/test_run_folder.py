"""The run folder's files (``training/run_folder.py``): ``curves.png`` readable after one evaluation and after
a hundred, ``metrics.jsonl`` read back after a kill, ``toy xy`` saying where it wrote its plot."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from PIL import Image

from improved_gan.cli import main
from improved_gan.training.run_folder import RunFolder, curves_figure, plot_curves, read_metrics


def _rows(n: int) -> list[dict]:
    """``n`` evaluations of a fashion-mnist GAN run, as the schedule writes them: losses near 1, an accuracy
    and precision/recall in [0, 1], a score near 3, an FD falling from 400 to 4 and a KID near 700."""
    rng = np.random.default_rng(0)
    steps = np.linspace(100, 100 * n, n).astype(int)
    fid = np.geomspace(400, 4, n) if n > 1 else np.array([364.0])
    rows = []
    for i, step in enumerate(steps):
        rows.append(
            {
                "step": int(step),
                "loss_d": float(0.7 + 0.1 * rng.standard_normal()),
                "loss_g": float(1.2 + 0.1 * rng.standard_normal()),
                "classifier_score": float(3 + rng.random()),
                "classifier_score_std": 0.1,
                "classifier_fid": float(fid[i]),
                "classifier_kid": float(700 + 50 * rng.random()),
                "classifier_precision": float(rng.random()),
                "classifier_recall": float(rng.random()),
                "test_accuracy": 0.79,
                "wall_seconds": 1.0 + i,
                "images_per_second": 500.0,
                "lr": 0.001,
            }
        )
    return rows


def _panels(fig) -> dict[str, set[str]]:
    return {ax.get_title(): {line.get_label() for line in ax.get_lines()} for ax in fig.axes}


@pytest.mark.parametrize("n", [1, 100])
def test_curves_have_one_panel_per_family_every_point_marked_and_no_warning(tmp_path, n):
    rows = _rows(n)
    path = tmp_path / "curves.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "No artists with labels" and any other warning fail
        fig = plot_curves(rows, path, "fmnist-gan (run)")
    assert _panels(fig) == {
        "losses (mean since the previous evaluation)": {"loss_d", "loss_g"},
        "accuracy, precision, recall (0 to 1)": {
            "test_accuracy",
            "classifier_precision",
            "classifier_recall",
        },
        "scores (higher is better)": {"classifier_score"},
        "classifier_fid (lower is better)": {"classifier_fid"},
        "classifier_kid (lower is better)": {"classifier_kid"},
    }
    for ax in fig.axes:
        for line in ax.get_lines():
            assert line.get_marker() == "o" and line.get_markersize() > 0  # one evaluation is a visible point
            assert list(line.get_xdata()) == [r["step"] for r in rows]
            assert list(line.get_ydata()) == [r[line.get_label()] for r in rows]
        lo, hi = ax.get_ylim()
        values = [v for line in ax.get_lines() for v in line.get_ydata()]
        assert lo <= min(values) and max(values) <= hi  # nothing drawn off the axis
    fractions = next(ax for ax in fig.axes if ax.get_title().startswith("accuracy"))
    lo, hi = fractions.get_ylim()
    assert lo <= 0.0 and hi >= 1.0 and hi - lo < 1.1  # the whole [0, 1] range, not stretched by an FD of 400
    fid_axis = next(ax for ax in fig.axes if ax.get_title().startswith("classifier_fid"))
    assert fid_axis.get_yscale() == ("log" if n == 100 else "linear")  # 400 -> 4 spans a factor of 100
    with Image.open(path) as im:
        w, h = im.size
        pixels = np.asarray(im.convert("L"), dtype=float)
    # every panel holds ink: its bounding box in the PNG is not a flat colour
    for ax in fig.axes:
        box = ax.get_window_extent()
        x0, x1 = int(box.x0), int(box.x1)
        y0, y1 = h - int(box.y1), h - int(box.y0)  # matplotlib counts pixels from the bottom
        assert pixels[y0:y1, x0:x1].std() > 5


def test_curves_of_a_run_without_metrics_have_only_the_loss_panel():
    rows = [{"step": 10 * i, "loss_d": 0.5, "loss_g": 1.0, "wall_seconds": 1.0} for i in (1, 2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = curves_figure(rows, "ring8-gan")
    assert _panels(fig) == {"losses (mean since the previous evaluation)": {"loss_d", "loss_g"}}


def test_curves_leave_out_numbers_with_no_finite_value_and_write_nothing_for_no_rows(tmp_path):
    rows = [{"step": 1, "loss_d": 0.5, "mode_kl": None}, {"step": 2, "loss_d": 0.4, "mode_kl": None}]
    fig = curves_figure(rows, "t")
    assert _panels(fig) == {"losses (mean since the previous evaluation)": {"loss_d"}}
    assert plot_curves([], tmp_path / "c.png", "t") is None and not (tmp_path / "c.png").exists()
    assert curves_figure([{"step": 1, "wall_seconds": 2.0}], "t") is None


def test_a_run_without_metrics_writes_its_curves_without_a_matplotlib_warning(tmp_path):
    run = tmp_path / "run"
    argv = ["train", "ring8-gan", "--out", str(run), "--steps", "2", "--eval-every", "1", "--quiet"]
    argv += ["--set", "data.batch_size=16", "--set", "model.init_batch=16", "--set", "train.metrics=none"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(argv) == 0
    assert [str(w.message) for w in caught if "matplotlib" in w.filename or "legend" in str(w.message)] == []
    with Image.open(run / "curves.png") as im:
        assert im.format == "PNG" and im.size[0] > 100
    rows = read_metrics(RunFolder(run).metrics)
    assert [r["step"] for r in rows] == [1, 2] and all(math.isfinite(r["loss_d"]) for r in rows)


def test_metrics_jsonl_cut_by_a_kill_drops_the_cut_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"step": 1}) + "\n" + json.dumps({"step": 2}) + '\n{"step": 3, "lo')
    assert read_metrics(path) == [{"step": 1}, {"step": 2}]


def test_toy_xy_says_where_it_wrote_its_plot(tmp_path, capsys):
    out = tmp_path / "xy"
    assert main(["toy", "xy", "--out", str(out), "--steps", "10"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"wrote {out / 'xy_trajectories.png'} (the plot) and {out / 'xy.json'}"
    assert (out / "xy_trajectories.png").is_file()
