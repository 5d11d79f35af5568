"""benchmarks/bf16_parity.py: the equal-steps and equal-time tables from run folders written here."""

from __future__ import annotations

import json

import numpy as np
import pytest
from benchmarks.bf16_parity import main


def _run(root, precision: str, seed: int, rows: list[tuple[int, float, float]]):
    """A run folder: config.json (preset, seed, precision) and metrics.jsonl rows (step, seconds, accuracy)."""
    d = root / f"{precision}-s{seed}"
    d.mkdir()
    cfg = {"preset": "fmnist-ssl", "seed": seed, "train": {"precision": precision}}
    (d / "config.json").write_text(json.dumps(cfg))
    lines = [json.dumps({"step": s, "wall_seconds": t, "test_accuracy": a}) for s, t, a in rows]
    (d / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return d


def test_tables_hold_means_and_stds_at_equal_steps_and_equal_time(tmp_path):
    runs = [
        _run(tmp_path, "fp32", 1, [(100, 10.0, 0.60), (200, 20.0, 0.70)]),
        _run(tmp_path, "fp32", 2, [(100, 9.0, 0.64), (200, 22.0, 0.72)]),
        # bf16 twice as fast; seed 1 ran on past the common last step (300 is dropped)
        _run(tmp_path, "bf16", 1, [(100, 5.0, 0.50), (200, 10.0, 0.66), (300, 15.0, 0.9)]),
        _run(tmp_path, "bf16", 2, [(100, 6.0, 0.54), (200, 11.0, 0.68)]),
    ]
    out = tmp_path / "parity.json"
    table = main([str(r) for r in runs] + ["--json", str(out)])["tables"]["fmnist-ssl"]
    assert json.loads(out.read_text())["tables"]["fmnist-ssl"]["faster"] == "bf16"

    steps = {e["step"]: e for e in table["equal_steps"]}
    assert sorted(steps) == [100, 200]
    acc = steps[200]["bf16"]["test_accuracy"]
    assert acc["mean"] == pytest.approx(np.mean([0.66, 0.68]))
    assert acc["std"] == pytest.approx(np.std([0.66, 0.68], ddof=1))
    wall = {w["step"]: w for w in table["wall_seconds"]}
    assert wall[200]["fp32"]["mean"] == pytest.approx(21.0) and wall[200]["bf16"]["mean"] == pytest.approx(
        10.5
    )

    # equal time per seed, on the clock of the seed's bf16 run: at step 200 (10 s for seed 1, 11 s for seed 2)
    # both fp32 runs have evaluated step 100 only; bf16 has evaluated step 200 in both
    at = {e["clock_step"]: e for e in table["equal_time"]}
    assert at[200]["seconds"]["mean"] == pytest.approx(10.5)
    assert at[200]["fp32"]["step"]["values"] == [100, 100]
    assert at[200]["fp32"]["test_accuracy"]["values"] == pytest.approx([0.60, 0.64])
    assert at[200]["bf16"]["test_accuracy"]["values"] == pytest.approx([0.66, 0.68])
    # at 5 and 6 s no fp32 run has evaluated yet: no value rather than a wrong one
    assert at[100]["fp32"]["test_accuracy"]["n"] == 0
    ratio = table["speed_ratio_fp32_over_bf16"]
    assert ratio["values"] == pytest.approx([20.0 / 10.0, 22.0 / 11.0])


def test_runs_of_one_precision_only_are_refused(tmp_path, capsys):
    run = _run(tmp_path, "fp32", 1, [(100, 10.0, 0.6)])
    with pytest.raises(SystemExit) as exc:
        main([str(run), "--json", str(tmp_path / "x.json")])
    assert exc.value.code == 2
    assert "both precisions" in capsys.readouterr().err
