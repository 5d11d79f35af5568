"""``improved-gan reproduce``: the run matrix, the launchers (N local processes, submitit's local executor), the
gathered tables against numbers recomputed here from the run folders, and a killed sweep that continues."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from data_files import write_idx_dataset
from improved_gan.cli import main
from improved_gan.sweeps import paper
from improved_gan.sweeps.gather import mean_std
from improved_gan.sweeps.launch import Budget, LocalLauncher, run_state, train_argv
from improved_gan.sweeps.matrix import METHOD_SSL, METHOD_SUPERVISED, RunSpec, label_runs, table_spec

# a tiny fmnist-ssl: 200 random training images, batches of 20, evaluation at the last step only
TINY = (
    "data.batch_size=20",
    "model.init_batch=40",
    "train.eval_every=1000",
    "train.checkpoint_every=2",
    "train.sample_grid=0",
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("fmnist")
    write_idx_dataset(d, n_train=200, n_test=50, seed=3)
    return d


def _sets(*extra: str) -> list[str]:
    return [w for s in (*TINY, *extra) for w in ("--set", s)]


def _summaries(out: Path) -> dict[str, dict]:
    return {
        str(p.parent.relative_to(out / "runs")): json.loads(p.read_text())
        for p in sorted((out / "runs").glob("*/seed*/summary.json"))
    }


# --------------------------------------------------------------------------------------------- run matrix
def test_label_runs_cover_methods_labels_and_seeds_with_paired_label_draws(tmp_path):
    runs = label_runs(table_spec("fmnist-table1"), tmp_path, 2, labels=(20, 100))
    assert len(runs) == 2 * 2 * 2  # labels x seeds x (GAN, supervised)
    assert len({r.folder for r in runs}) == len(runs)
    for r in runs:
        n = int(r.column)
        assert f"data.labels_per_class={n // 10}" in r.sets
        assert f"data.label_seed={r.seed}" in r.sets  # each seed draws its own labelled subset
        assert ("loss.unsupervised_weight=0" in r.sets) == (r.row == METHOD_SUPERVISED)
    # the two methods of one seed share the labelled subset: their --set lists differ only by the weight
    a = next(r for r in runs if r.key == "ssl-20/seed2")
    b = next(r for r in runs if r.key == "supervised-20/seed2")
    assert set(b.sets) - set(a.sets) == {"loss.unsupervised_weight=0"}


def test_train_argv_is_the_documented_command(tmp_path):
    spec = RunSpec("ssl-20/seed1", "fmnist-ssl", 1, METHOD_SSL, "20", ("a.b=1",), tmp_path / "r")
    argv = train_argv(spec, Budget(steps=7, minutes=1.5, data_dir="/d"), python="py")
    assert argv == [
        "py", "-m", "improved_gan", "train", "fmnist-ssl", "--out", str(tmp_path / "r"), "--seed", "1",
        "--auto-resume", "--quiet", "--steps", "7", "--time-budget", "1.5", "--set", "a.b=1", "--data-dir", "/d",
    ]  # fmt: skip


def test_paper_figures_are_the_published_ones():
    # Table 1 counts errors of 10,000 test images; the table shows them as %.
    assert paper.PAPER_ERROR_PCT["mnist"][100] == pytest.approx((0.93, 0.065))
    assert paper.PAPER_ERROR_PCT["mnist"][20] == pytest.approx((16.77, 4.52))
    assert paper.PAPER_ERROR_PCT["cifar10"][4000] == (18.63, 2.32)
    assert paper.PAPER_ERROR_PCT["svhn"][1000] == (8.11, 1.3)
    assert paper.TABLE3_INCEPTION["all techniques"] == (8.09, 0.07)


def test_mean_std_is_the_sample_standard_deviation():
    v = [3.0, 5.0, 10.0]
    m, s = mean_std(v)
    assert m == pytest.approx(np.mean(v)) and s == pytest.approx(np.std(v, ddof=1))
    assert mean_std([2.0]) == (2.0, 0.0)


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "argv, words",
    [
        (["reproduce", "table9"], "invalid choice"),
        (["reproduce", "fmnist-table1", "--labels", "15"], "--labels 15"),
        (["reproduce", "fmnist-table1", "--labels", "x"], "--labels x"),
        (["reproduce", "fmnist-table1", "--set", "nope.key=1"], "nope.key"),
        (["reproduce", "fmnist-table3", "--labels", "20"], "ablation table"),
    ],
)
def test_bad_options_exit_2_with_one_error_line_before_any_run(tmp_path, capsys, argv, words):
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and words in err[0]
    assert not (tmp_path / "o" / "runs").exists()


# ------------------------------------------------------------------------------- end to end, --jobs 2
def test_tiny_table_end_to_end_with_two_jobs(tmp_path, data_dir, capsys):
    out = tmp_path / "t1"
    argv = [
        "reproduce",
        "fmnist-table1",
        "--out",
        str(out),
        "--labels",
        "20,50",
        "--seeds",
        "1",
        "--steps",
        "3",
    ]
    argv += ["--jobs", "2", "--data-dir", str(data_dir), *_sets()]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    runs = _summaries(out)
    assert sorted(runs) == ["ssl-20/seed1", "ssl-50/seed1", "supervised-20/seed1", "supervised-50/seed1"]
    assert all(s["status"] == "finished" and s["steps"] == 3 for s in runs.values())
    assert runs["ssl-50/seed1"]["labels"] == 50 and runs["supervised-20/seed1"]["labels"] == 20
    cfg = json.loads((out / "runs" / "supervised-20" / "seed1" / "config.json").read_text())
    assert cfg["loss"]["unsupervised_weight"] == 0 and cfg["data"]["labels_per_class"] == 2

    table = json.loads((out / "table.json").read_text())
    for row in table["rows"]:
        tag = {METHOD_SSL: "ssl", METHOD_SUPERVISED: "supervised"}
        for method, st in row["methods"].items():
            expect = 100.0 * runs[f"{tag[method]}-{row['labels']}/seed1"]["test_error"]
            assert st["values"] == [pytest.approx(expect)] and st["mean"] == pytest.approx(expect)
    with open(out / "table.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["steps"] for r in rows} == {"3"}
    md = (out / "table.md").read_text()
    assert "| 20 |" in md and "| 50 |" in md and "No GAN-based semi-supervised result" in md
    assert md.strip() in printed
    assert (out / "table.png").stat().st_size > 1000
    logs = sorted(p.name for p in (out / "logs").glob("*.json"))
    assert len(logs) == 4

    # the same command again: every run is skipped, nothing retrained
    stamps = {k: (out / "runs" / k / "summary.json").stat().st_mtime_ns for k in runs}
    assert main(argv) == 0
    assert "4 of 4 runs finished before: skipped" in capsys.readouterr().out
    assert stamps == {k: (out / "runs" / k / "summary.json").stat().st_mtime_ns for k in runs}


def test_a_failed_run_is_recorded_and_the_others_go_on(tmp_path, data_dir):
    out = tmp_path / "f"
    specs = label_runs(table_spec("fmnist-table1"), out, 1, labels=(20,), sets=TINY)
    bad = specs[1].folder  # the supervised run: its folder already holds a run of another configuration
    bad.mkdir(parents=True)
    (bad / "config.json").write_text(json.dumps({"preset": "fmnist-ssl", "seed": 99}))
    records = LocalLauncher(2).run(specs, Budget(steps=2, data_dir=str(data_dir)), out / "logs")
    assert records[specs[0].key]["state"] == "done" and run_state(specs[0].folder) == "done"
    rec = records[specs[1].key]
    assert rec["state"] == "failed" and rec["exit_status"] == 2
    assert "error:" in rec["output_tail"]
    assert json.loads((out / "logs" / "supervised-20__seed1.json").read_text())["state"] == "failed"


# ----------------------------------------------------------------------------------- submitit (local)
def test_submitit_local_executor_runs_the_slurm_path(tmp_path, data_dir, capsys):
    pytest.importorskip("submitit")
    out = tmp_path / "s"
    argv = ["reproduce", "fmnist-table1", "--out", str(out), "--labels", "20", "--seeds", "2", "--steps", "2"]
    argv += ["--no-baseline", "--launcher", "submitit-local", "--data-dir", str(data_dir), *_sets()]
    assert main(argv) == 0
    runs = _summaries(out)
    assert sorted(runs) == ["ssl-20/seed1", "ssl-20/seed2"]
    assert all(s["steps"] == 2 for s in runs.values())
    rec = json.loads((out / "logs" / "ssl-20__seed2.json").read_text())
    assert rec["launcher"] == "slurm" and rec["state"] == "done"
    assert json.loads((out / "logs" / "submitted.json").read_text())["cluster"] == "local"
    vals = [100 * runs[f"ssl-20/seed{k}"]["test_error"] for k in (1, 2)]
    st = json.loads((out / "table.json").read_text())["rows"][0]["methods"][METHOD_SSL]
    assert st["mean"] == pytest.approx(np.mean(vals)) and st["std"] == pytest.approx(np.std(vals, ddof=1))


# ---------------------------------------------------------------------------------- kill, then continue
@pytest.mark.slow
def test_a_killed_sweep_continues_with_the_same_command(tmp_path, data_dir):
    out = tmp_path / "k"
    cmd = [sys.executable, "-m", "improved_gan", "reproduce", "fmnist-table1", "--out", str(out)]
    cmd += ["--labels", "20", "--seeds", "2", "--no-baseline", "--steps", "60", "--jobs", "1"]
    cmd += ["--data-dir", str(data_dir), *_sets()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    first, second = out / "runs" / "ssl-20" / "seed1", out / "runs" / "ssl-20" / "seed2"
    deadline = time.monotonic() + 1800  # generous: the test machine may be shared
    while not (run_state(first) == "done" and run_state(second) == "partial"):
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(
        signal.SIGKILL
    )  # no handler runs: the run in flight is stopped by its parent-death signal
    proc.wait()
    assert run_state(second) == "partial"
    stamp = (first / "summary.json").stat().st_mtime_ns

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 of 2 runs finished before: skipped" in again.stdout
    assert "resumed ssl-20/seed2" in again.stdout
    assert (first / "summary.json").stat().st_mtime_ns == stamp
    runs = _summaries(out)
    assert [runs[k]["steps"] for k in ("ssl-20/seed1", "ssl-20/seed2")] == [60, 60]
    assert json.loads((out / "table.json").read_text())["rows"][0]["methods"][METHOD_SSL]["n"] == 2


# ------------------------------------------------------------------------------ ablate through launchers
def test_launched_ablation_runs_are_the_ones_ablate_then_skips(tmp_path):
    from improved_gan.sweeps.ablation import launch_ablation
    from improved_gan.training.ablate import run_ablation

    out = tmp_path / "abl"
    sets = ("train.eval_every=1000", "train.eval_samples=200", "train.checkpoint_every=1000")
    records = launch_ablation("ring8-gan", out, variants=("ls",), seeds=1, steps=3, overrides=sets, jobs=2)
    assert sorted(records) == ["-ls/seed1", "all/seed1"]
    assert all(r["state"] == "done" for r in records.values())
    stamps = {k: (out / k / "summary.json").stat().st_mtime_ns for k in records}
    result = run_ablation(
        "ring8-gan", out, variants=("ls",), seeds=1, steps=3, overrides=sets, progress=False
    )
    assert stamps == {k: (out / k / "summary.json").stat().st_mtime_ns for k in records}  # none retrained
    assert [v["variant"] for v in result["variants"]] == ["all techniques", "-ls"]
    cfg = json.loads((out / "-ls" / "seed1" / "config.json").read_text())
    assert cfg["loss"]["real_target"] == 1.0 and cfg["train"]["steps"] == 3


def test_ablate_command_with_two_jobs_runs_each_variant_in_its_own_process(tmp_path, capsys):
    """``improved-gan ablate --jobs 2``: every run is a launched process (its log under ``logs/``), and the table
    is written from their folders."""
    from improved_gan.cli import main

    out = tmp_path / "abl"
    sets = ["train.eval_every=1000", "train.eval_samples=200", "train.checkpoint_every=1000"]
    argv = ["ablate", "ring8-gan", "--variants=-ls", "--seeds", "1", "--steps", "3", "--jobs", "2"]
    argv += ["--out", str(out), "--quiet", *[w for kv in sets for w in ("--set", kv)]]
    assert main(argv) == 0
    logs = sorted(p.name for p in (out / "logs").iterdir())
    assert any(name.startswith("all") for name in logs) and any(name.startswith("-ls") for name in logs)
    table = json.loads((out / "ablation.json").read_text())
    assert [v["variant"] for v in table["variants"]] == ["all techniques", "-ls"]
    for run in ("all/seed1", "-ls/seed1"):
        summary = json.loads((out / run / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["steps"] == 3


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the task's pid from /proc")
def test_a_preempted_array_task_checkpoints_requeues_and_finishes(tmp_path, data_dir):
    """The scheduler's early-warning signal (USR2, as submitit asks SLURM to send before a preemption or the time
    limit) reaches a task of submitit's local executor; the task stops its run at a checkpoint and requeues, and
    the requeued task continues the run to its last step (``--auto-resume``)."""
    submitit = pytest.importorskip("submitit")
    from improved_gan.sweeps.launch import TrainTask

    spec = label_runs(table_spec("fmnist-table1"), tmp_path, 1, labels=(20,), baseline=False, sets=TINY)[0]
    argv = train_argv(spec, Budget(steps=400, data_dir=str(data_dir)))
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="local")
    executor.update_parameters(timeout_min=30)
    job = executor.submit(TrainTask(argv, str(spec.folder), str(tmp_path / "logs" / "run.json")))
    deadline = time.monotonic() + 600
    while run_state(spec.folder) != "partial":
        assert time.monotonic() < deadline and not job.done()
        time.sleep(0.05)
    # SLURM signals every process of the job step: the run ignores USR2, the task (the run's parent) handles it
    run_pid = int((spec.folder / ".lock").read_text().split()[0])
    task_pid = int(Path(f"/proc/{run_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.kill(run_pid, signal.SIGUSR2)
    os.kill(task_pid, signal.SIGUSR2)
    rc, summary = job.result()
    assert rc == 0 and summary["steps"] == 400 and summary["status"] == "finished"
    starts = (tmp_path / "logs" / "run.log").read_text().count("$ ")
    assert starts == 2  # the first task, stopped at a checkpoint, then the requeued one


def test_slurm_options_reach_the_sbatch_script(tmp_path, data_dir, monkeypatch, capsys):
    """Without a cluster: fake ``srun``/``sbatch`` on PATH; the array's sbatch file carries the options."""
    pytest.importorskip("submitit")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("srun", "exit 0"), ("sbatch", "echo 'Submitted batch job 4242'")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "sl"
    argv = [
        "reproduce",
        "fmnist-table1",
        "--out",
        str(out),
        "--labels",
        "20,50",
        "--seeds",
        "2",
        "--steps",
        "5",
    ]
    argv += ["--launcher", "slurm", "--no-wait", "--partition", "gpu", "--time", "90", "--device", "cuda"]
    argv += ["--gpus-per-job", "1", "--cpus-per-job", "6", "--array-parallelism", "3", "--account", "proj"]
    argv += ["--data-dir", str(data_dir)]
    assert main(argv) == 0
    sbatch = "\n".join(p.read_text() for p in (out / "logs" / "submitit").glob("*.sh"))
    for option in (
        "--partition=gpu",
        "--time=90",
        "--gpus-per-node=1",
        "--cpus-per-task=6",
        "--account=proj",
        "--array=0-7%3",  # 8 runs (2 label counts x 2 seeds x 2 methods), at most 3 at once
        "--signal=USR2@",
    ):
        assert f"#SBATCH {option}" in sbatch, option
    jobs = json.loads((out / "logs" / "submitted.json").read_text())["jobs"]
    assert len(jobs) == 8 and jobs["ssl-20/seed1"].startswith("4242_")


def test_slurm_launcher_without_slurm_is_one_error_line(tmp_path, monkeypatch, capsys):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun, no sbatch
    argv = [
        "reproduce",
        "fmnist-table1",
        "--out",
        str(tmp_path / "o"),
        "--launcher",
        "slurm",
        "--labels",
        "20",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --launcher slurm:")
