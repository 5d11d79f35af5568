"""``improved-gan ablate`` on a tiny toy preset: the three files, and finished runs skipped on a second call."""

from __future__ import annotations

import json
import math

from PIL import Image

from improved_gan.cli import main


def test_ablate_writes_three_files_and_skips_finished_runs(tmp_path, capsys):
    out = tmp_path / "abl"
    argv = [
        "ablate",
        "ring8-gan",
        "--variants=-ls,mbf",
        "--seeds",
        "2",
        "--steps",
        "3",
        "--out",
        str(out),
        "--set",
        "train.eval_samples=200",
        "--set",
        "data.batch_size=32",
        "--set",
        "model.init_batch=32",
        "--quiet",
    ]
    assert main(argv) == 0
    table = capsys.readouterr().out
    for name in ("ablation.json", "ablation.md", "ablation.png"):
        assert (out / name).is_file()
    result = json.loads((out / "ablation.json").read_text())
    assert [v["variant"] for v in result["variants"]] == ["all techniques", "-ls", "-mbf"]
    for v in result["variants"]:
        assert [r["seed"] for r in v["runs"]] == [1, 2]
        hq = v["metrics"]["high_quality"]
        assert len(hq["values"]) == 2 and 0.0 <= hq["mean"] <= 1.0
    md = (out / "ablation.md").read_text()
    assert "| -ls |" in md and "| all techniques |" in md and "high_quality" in table
    assert Image.open(out / "ablation.png").size[0] > 100
    # the ceiling: 200 points of the mixture itself; within 3 std of a 2-D isotropic Gaussian's centre lies
    # 1 - exp(-9/2) = 0.989 of its mass, and every mode is hit
    ceiling = result["ceiling"]
    assert ceiling["num_samples"] == 200 and ceiling["modes"] == 8
    assert abs(ceiling["high_quality"] - (1 - math.exp(-4.5))) < 0.03
    assert "| real data (200 samples) |" in md

    # a second call trains nothing: every run folder already has its summary
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/seed*/checkpoints/last.pt")}
    assert len(stamps) == 6
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/seed*/checkpoints/last.pt")} == stamps


def test_ablate_rejects_unknown_variant(tmp_path, capsys):
    assert main(["ablate", "ring8-gan", "--variants", "-xyz", "--out", str(tmp_path / "a")]) == 2
    assert capsys.readouterr().err.startswith("error:")
    assert main(["ablate", "fmnist-ssl", "--out", str(tmp_path / "b")]) == 2


def test_ablate_reports_a_missing_ceiling_instead_of_failing(tmp_path, monkeypatch, capsys):
    import improved_gan.training.ablate as ablate_module
    from improved_gan.errors import UserError

    def missing(*args, **kwargs):
        raise UserError("classifier weights not found: /nowhere/net.pt")

    monkeypatch.setattr(ablate_module, "real_data_ceiling", missing)
    out = tmp_path / "abl"
    sets = ["train.eval_samples=100", "data.batch_size=16", "model.init_batch=16"]
    argv = [
        "ablate",
        "ring8-gan",
        "--variants",
        "ls",
        "--seeds",
        "1",
        "--steps",
        "2",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(argv + [a for s in sets for a in ("--set", s)]) == 0
    md = (out / "ablation.md").read_text()
    assert "| real data (100 samples) | n/a | n/a | n/a |" in md
    assert "Ceiling not computed: classifier weights not found: /nowhere/net.pt" in md
    assert json.loads((out / "ablation.json").read_text())["ceiling"]["error"].startswith("classifier")
