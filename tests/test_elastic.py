"""torchrun and long runs (README, "Long runs on clusters"): a SIGKILLed worker restarted by
``torchrun --max-restarts 1`` with ``train --auto-resume`` finishes bit-identical to an uninterrupted run (CPU,
gloo); a stop signal to one rank stops every rank at the same step; rank 0's refusal ends every rank; evaluate
reads a torchrun run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import torch

from data_files import write_idx_dataset
from improved_gan.cli import main
from run_checks import assert_tensors_equal, metric_rows, one_thread_env, torchrun_cmd

ARGS = [
    "--set",
    "data.batch_size=10",
    "--set",
    "model.init_batch=40",
    "--quiet",
    "--steps",
    "6",
    "--eval-every",
    "3",
    "--checkpoint-every",
    "2",
]

# The command line, with a pause after step PAUSE_AT on rank PAUSE_RANK of the first attempt: the worker writes
# its pid to MARK and sleeps (until it is killed, or until a stop is requested).
WRAPPER = textwrap.dedent(
    """
    import os, sys, time
    from improved_gan.training import run, trainer

    first = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
    if first and os.environ.get("RANK") == os.environ["PAUSE_RANK"]:
        original = trainer.Trainer.train_step

        def step(self):
            out = original(self)
            if self.step == int(os.environ["PAUSE_AT"]):
                mark = os.environ["MARK"]
                with open(mark + ".tmp", "w") as f:
                    f.write(str(os.getpid()))
                os.replace(mark + ".tmp", mark)
                t0 = time.time()
                while not run.stop_requested() and time.time() - t0 < 120:
                    time.sleep(0.01)
            return out

        trainer.Trainer.train_step = step
    from improved_gan.cli import main

    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.fixture(scope="module")
def fake_fmnist(tmp_path_factory):
    d = tmp_path_factory.mktemp("fmnist")
    write_idx_dataset(d, n_train=200, n_test=50, seed=5)
    return d


@pytest.fixture(scope="module")
def base_run(fake_fmnist, tmp_path_factory):
    """An uninterrupted 2-process run."""
    out = tmp_path_factory.mktemp("base") / "run"
    cmd = torchrun_cmd("-m", "improved_gan", "train", "fmnist-ssl", "--out", str(out))
    p = subprocess.run(
        [*cmd, "--data-dir", str(fake_fmnist), *ARGS],
        env=one_thread_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return out


def _assert_same_run(a: Path, b: Path) -> None:
    assert_tensors_equal(
        torch.load(a / "checkpoints" / "last.pt", weights_only=True),
        torch.load(b / "checkpoints" / "last.pt", weights_only=True),
    )
    assert metric_rows(a) == metric_rows(b)


def _start_paused(tmp_path, fake_fmnist, out, *, rank: int, pause_at: int, restarts: int, extra=()):
    script = tmp_path / "wrapper.py"
    script.write_text(WRAPPER)
    mark = tmp_path / "mark"
    cmd = torchrun_cmd(str(script), "train", "fmnist-ssl", "--out", str(out), restarts=restarts)
    env = one_thread_env(PAUSE_RANK=str(rank), PAUSE_AT=str(pause_at), MARK=str(mark))
    proc = subprocess.Popen(
        [*cmd, "--data-dir", str(fake_fmnist), *ARGS, *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while not mark.exists():
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[1][-3000:])
        assert time.time() < deadline
        time.sleep(0.05)
    return proc, int(mark.read_text())


@pytest.mark.slow  # two torchrun starts (~35 s on the shared 2-core machine, plus the reference run)
def test_sigkilled_worker_is_restarted_and_the_run_finishes_bit_identical(fake_fmnist, base_run, tmp_path):
    run = tmp_path / "run"
    # rank 1 pauses after step 3 (the step-2 checkpoint is written), and is killed there
    proc, pid = _start_paused(
        tmp_path, fake_fmnist, run, rank=1, pause_at=3, restarts=1, extra=["--auto-resume"]
    )
    assert int(torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"]) == 2
    os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    _assert_same_run(base_run, run)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["world_size"] == 2


@pytest.mark.slow  # needs the reference torchrun run (~20 s)
def test_evaluate_reads_a_torchrun_run(base_run, fake_fmnist, capsys):
    assert main(["evaluate", str(base_run), "--data-dir", str(fake_fmnist)]) == 0
    ev = json.loads((base_run / "evaluation.json").read_text())
    summary = json.loads((base_run / "summary.json").read_text())
    assert ev["step"] == 6 and ev["test_accuracy"] == summary["test_accuracy"]


@pytest.mark.slow  # racy on a loaded machine: torchrun may SIGTERM rank 1 before it exits by itself
def test_rank0_refusal_ends_every_rank_with_one_error_line(fake_fmnist, tmp_path):
    base_run = tmp_path / "run"  # a folder holding a run (written by one process: it is only refused here)
    (base_run / "checkpoints").mkdir(parents=True)
    (base_run / "config.json").write_text("{}")
    cmd = torchrun_cmd("-m", "improved_gan", "train", "fmnist-ssl", "--out", str(base_run))
    t0 = time.time()
    p = subprocess.run(
        [*cmd, "--data-dir", str(fake_fmnist), *ARGS],
        env=one_thread_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode != 0
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {base_run}: already holds a run; use 'improved-gan resume {base_run}', --auto-resume, or "
        "another --out"
    ], p.stderr[-3000:]
    # rank 1 exited by itself with rank 0's status 2 (it used to wait until torchrun killed it with SIGTERM);
    # rank 0 may still be killed by torchrun while it exits, once rank 1's failure is seen
    codes = dict(re.findall(r"rank\s+: (\d) \(local_rank: \d\)\n\s+exitcode\s+: (-?\d+)", p.stderr))
    assert codes.get("1") == "2" and codes.get("0") in ("2", "-15", None), p.stderr[-3000:]
    assert time.time() - t0 < 120


@pytest.mark.slow
def test_sigterm_to_one_rank_stops_every_rank_at_the_same_step(fake_fmnist, base_run, tmp_path):
    run = tmp_path / "run"
    proc, pid = _start_paused(tmp_path, fake_fmnist, run, rank=1, pause_at=3, restarts=0)
    os.kill(pid, signal.SIGTERM)  # rank 1 only: rank 0 learns it from the per-step decision
    _, err = proc.communicate(timeout=600)
    assert proc.returncode != 0  # torchrun reports the workers' 143
    assert [line for line in err.splitlines() if line.startswith("stopped by")] == [
        f"stopped by SIGTERM: {run} at step 3, checkpoint written; continue with: improved-gan resume {run} "
        f"--data-dir {fake_fmnist} (under torchrun, 2 processes)"
    ], err[-3000:]
    assert int(torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"]) == 3
    cmd = torchrun_cmd("-m", "improved_gan", "resume", str(run), "--data-dir", str(fake_fmnist), "--quiet")
    p = subprocess.run(cmd, env=one_thread_env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    _assert_same_run(base_run, run)
