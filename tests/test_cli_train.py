"""End to end: ``improved-gan train / resume / evaluate / sample`` on tiny generated data (issue 4 tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

from data_files import write_idx_dataset
from improved_gan.cli import main
from run_checks import assert_tensors_equal, metric_rows

TINY = ["--set", "data.batch_size=20", "--set", "model.init_batch=40", "--quiet"]


@pytest.fixture(scope="module")
def fake_fmnist(tmp_path_factory):
    d = tmp_path_factory.mktemp("fmnist")
    write_idx_dataset(d, n_train=200, n_test=50, seed=3)
    return d


def _train(data_dir, out, *extra):
    return main(["train", "fmnist-ssl", "--data-dir", str(data_dir), "--out", str(out), *TINY, *extra])


def test_train_writes_every_file_of_the_run_folder(fake_fmnist, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(fake_fmnist, run, "--steps", "6", "--checkpoint-every", "3", "--eval-every", "3") == 0
    out = capsys.readouterr().out
    assert "test_accuracy" in out
    for name in (
        "config.json",
        "metrics.jsonl",
        "summary.json",
        "generator.pt",
        "curves.png",
        "checkpoints/last.pt",
        "samples/latest.png",
        "samples/step_0000003.png",
        "samples/step_0000006.png",
    ):
        assert (run / name).is_file(), name
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["steps"] == 6 and cfg["data"]["batch_size"] == 20
    assert cfg["run"]["world_size"] == 1 and cfg["run"]["global_batch_size"] == 20
    rows = metric_rows(run)
    assert [r["step"] for r in rows] == [3, 6]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["labels"] == 100
    assert summary["test_error"] == pytest.approx(1 - summary["test_accuracy"])
    assert 0.0 <= summary["test_accuracy"] <= 1.0 and summary["wall_seconds"] > 0
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == 6 and ckpt["format"] == "improved-gan-checkpoint-v1"
    assert len(ckpt["labeled_indices"]) == 100


def test_resume_after_interruption_equals_uninterrupted_run(fake_fmnist, tmp_path, monkeypatch):
    full = tmp_path / "full"
    assert _train(fake_fmnist, full, "--steps", "8", "--checkpoint-every", "4", "--eval-every", "2") == 0

    # Interrupt a second run in the middle of step 6 (after the step-4 checkpoint), as a crash would.
    from improved_gan.training import trainer

    original = trainer.Trainer.train_step

    def crashing(self):
        if self.step == 5:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(trainer.Trainer, "train_step", crashing)
    part = tmp_path / "part"
    assert _train(fake_fmnist, part, "--steps", "8", "--checkpoint-every", "4", "--eval-every", "2") == 130
    monkeypatch.setattr(trainer.Trainer, "train_step", original)
    assert torch.load(part / "checkpoints" / "last.pt", weights_only=True)["step"] == 4
    assert main(["resume", str(part), "--data-dir", str(fake_fmnist), "--quiet"]) == 0

    a = torch.load(full / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(part / "checkpoints" / "last.pt", weights_only=True)
    assert_tensors_equal(a, b)
    assert metric_rows(full) == metric_rows(part)
    assert (full / "samples" / "latest.png").read_bytes() == (part / "samples" / "latest.png").read_bytes()


def test_resume_after_sigkill_is_bit_identical(fake_fmnist, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [
        "--data-dir",
        str(fake_fmnist),
        "--steps",
        "12",
        "--checkpoint-every",
        "3",
        "--eval-every",
        "10",
        *TINY,
    ]
    full, part = tmp_path / "full", tmp_path / "part"
    cmd = [sys.executable, "-m", "improved_gan", "train", "fmnist-ssl"]
    subprocess.run([*cmd, "--out", str(full), *args], check=True, env=env, capture_output=True)
    proc = subprocess.Popen(
        [*cmd, "--out", str(part), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not (part / "checkpoints" / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "improved_gan",
            "resume",
            str(part),
            "--data-dir",
            str(fake_fmnist),
            "--quiet",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    a = torch.load(full / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(part / "checkpoints" / "last.pt", weights_only=True)
    assert_tensors_equal(a, b)
    assert metric_rows(full) == metric_rows(part)


def test_time_budget_stops_cleanly_and_writes_results(fake_fmnist, tmp_path):
    run = tmp_path / "run"
    assert _train(fake_fmnist, run, "--steps", "100000", "--time-budget", "0.02") == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_by_time_budget"] is True and 0 < summary["steps"] < 100000
    assert "test_accuracy" in summary
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == summary["steps"]


def test_time_budget_anneals_the_learning_rate_over_the_budget(fake_fmnist, tmp_path):
    # decay from the start, over a budget of 1.8 s: the steps (100,000 planned) would barely move it
    run = tmp_path / "run"
    extra = ["--steps", "100000", "--time-budget", "0.03", "--set", "optim.decay_start=0.0"]
    assert _train(fake_fmnist, run, *extra, "--set", "train.eval_every=100000") == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_by_time_budget"] is True
    (row,) = metric_rows(run)  # one evaluation, at the end: its lr is the mean over the whole run
    lr0 = 0.003
    by_steps = lr0 * (1 - summary["steps"] / 2 / 100000)  # the mean if the decay followed the steps
    assert 0.0 < row["lr"] < 0.8 * by_steps
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["opt_d"]["param_groups"][0]["lr"] < 0.2 * lr0  # close to 0 when the budget ends


def test_sample_and_evaluate(fake_fmnist, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(fake_fmnist, run, "--steps", "2") == 0
    png = tmp_path / "s.png"
    assert main(["sample", str(run), "--num", "16", "--out", str(png)]) == 0
    img = Image.open(png)
    # 4 x 4 grid of 28 x 28 images with 2-pixel borders
    assert img.size == (4 * 30 + 2, 4 * 30 + 2) and img.mode == "L"
    assert main(["evaluate", str(run), "--data-dir", str(fake_fmnist)]) == 0
    ev = json.loads((run / "evaluation.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert ev["step"] == 2 and ev["test_accuracy"] == summary["test_accuracy"]


def _expect_error(capsys, argv, fragment):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert fragment in err, err


def test_bad_input_exits_2_with_one_line(fake_fmnist, tmp_path, capsys):
    d = str(fake_fmnist)
    _expect_error(capsys, ["train", "imagenet-ssl", "--data-dir", d], "unknown preset")
    _expect_error(capsys, ["train", "fmnist-ssl", "--data-dir", d, "--set", "optim.speed=3"], "optim.speed")
    _expect_error(capsys, ["train", "fmnist-ssl", "--data-dir", d, "--set", "optim.lr=fast"], "optim.lr")
    _expect_error(capsys, ["train", "fmnist-ssl", "--data-dir", d, "--steps", "-3"], "--steps")
    _expect_error(
        capsys,
        ["train", "fmnist-ssl", "--data-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "r0")],
        "nothing",
    )
    _expect_error(capsys, ["resume", str(tmp_path / "missing")], "missing")
    # a checkpoint that is not ours: garbage bytes, and a valid torch file of another format
    run = tmp_path / "run"
    assert _train(fake_fmnist, run, "--steps", "2") == 0
    good = (run / "checkpoints" / "last.pt").read_bytes()
    (run / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    _expect_error(capsys, ["resume", str(run), "--data-dir", d], "last.pt")
    torch.save({"weights": torch.zeros(3)}, run / "checkpoints" / "last.pt")
    _expect_error(capsys, ["resume", str(run), "--data-dir", d], "not an improved-gan checkpoint")
    (run / "checkpoints" / "last.pt").write_bytes(good)
    _expect_error(capsys, ["train", "fmnist-ssl", "--data-dir", d, "--out", str(run)], "already holds a run")
    _expect_error(capsys, ["sample", str(run), "--num", "4", "--out", str(tmp_path / "x.jpg")], "png")


def test_presets_command_lists_every_preset(capsys):
    from improved_gan.training.presets import preset_names

    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == preset_names()


def test_gan_runs_train_and_evaluate_with_their_metrics(fake_fmnist, tmp_path, monkeypatch, capsys):
    # the classifier behind the Fashion-MNIST metrics, trained on the fake data into a temporary folder
    monkeypatch.setenv("IMPROVED_GAN_CLASSIFIERS", str(tmp_path / "classifiers"))
    assert main(["train", "fmnist-classifier", "--data-dir", str(fake_fmnist), "--quiet"]) == 0
    assert list((tmp_path / "classifiers").glob("fashion-mnist-classifier-v1.pt"))
    run = tmp_path / "gan"
    small = ["--set", "data.batch_size=8", "--set", "model.init_batch=16", "--set", "train.eval_samples=40"]
    assert (
        main(
            [
                "train",
                "fmnist-gan",
                "--data-dir",
                str(fake_fmnist),
                "--out",
                str(run),
                "--steps",
                "2",
                "--quiet",
                *small,
            ]
        )
        == 0
    )
    summary = json.loads((run / "summary.json").read_text())
    assert {"classifier_score", "classifier_fid"} <= set(summary)
    # the same run again in this process, now with the classifier cached: evaluation must not touch the
    # training's random numbers, so the parameters are bit-identical
    again = tmp_path / "gan-again"
    argv = ["train", "fmnist-gan", "--data-dir", str(fake_fmnist), "--steps", "2", "--quiet", *small]
    assert main([*argv, "--out", str(again)]) == 0
    first, second = (torch.load(r / "checkpoints" / "last.pt", weights_only=True) for r in (run, again))
    for net in ("G", "D"):
        assert first[net].keys() == second[net].keys()
        for k in first[net]:
            assert torch.equal(first[net][k], second[net][k]), (net, k)
    assert main(["evaluate", str(run), "--data-dir", str(fake_fmnist), "--num-samples", "40"]) == 0
    ev = json.loads((run / "evaluation.json").read_text())
    assert ev["num_samples"] == 40 and ev["classifier_score"] >= 1.0 and ev["classifier_fid"] >= 0.0
    # the toy GAN: mode coverage
    toy = tmp_path / "toy"
    assert (
        main(
            [
                "train",
                "ring8-gan",
                "--out",
                str(toy),
                "--steps",
                "2",
                "--quiet",
                "--set",
                "data.batch_size=16",
                "--set",
                "model.init_batch=16",
                "--set",
                "train.eval_samples=100",
            ]
        )
        == 0
    )
    assert main(["evaluate", str(toy)]) == 0
    ev = json.loads((toy / "evaluation.json").read_text())
    assert 0 <= ev["modes"] <= 8 and 0.0 <= ev["high_quality"] <= 1.0
    png = tmp_path / "toy.png"
    assert main(["sample", str(toy), "--num", "50", "--out", str(png)]) == 0 and png.stat().st_size > 0


@pytest.mark.parametrize(
    "dataset, device, env, expected",
    [
        ("ring8", "cpu", None, 1),
        ("grid25", None, None, 1),
        ("ring8", "cpu", "2", 2),
        ("fashion-mnist", "cpu", None, 2),
    ],
)
def test_toy_data_runs_on_one_thread_unless_the_user_chose(monkeypatch, dataset, device, env, expected):
    from improved_gan.cli import _one_thread_for_toy_data

    before = torch.get_num_threads()
    if env is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", env)
    try:
        torch.set_num_threads(2)
        _one_thread_for_toy_data(dataset, device)
        assert torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(before)


def test_evaluate_inception_weights_reach_the_metrics_but_not_the_environment(tmp_path, monkeypatch, capsys):
    """``evaluate --inception-weights FILE`` is a setting of that evaluation: a missing file is one error line
    naming it (exit 2), and the option never leaks into ``os.environ`` for later calls in the process."""
    import os

    from improved_gan.cli import main
    from run_checks import tiny_fmnist_gan_run

    monkeypatch.delenv("IMPROVED_GAN_INCEPTION_WEIGHTS", raising=False)
    data, run = tiny_fmnist_gan_run(tmp_path, seed=2)
    capsys.readouterr()
    missing = tmp_path / "no-such-weights.pth"
    argv = [
        "evaluate",
        str(run),
        "--data-dir",
        str(data),
        "--metrics",
        "inception_score",
        "--num-samples",
        "10",
    ]
    assert main([*argv, "--inception-weights", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and str(missing) in err[0]
    assert "IMPROVED_GAN_INCEPTION_WEIGHTS" not in os.environ
