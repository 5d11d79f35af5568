"""Long runs (README, "Long runs on clusters"): stop signals, --auto-resume, divergence, I/O errors, file modes,
the one-writer lock, and the run-folder bugs found in review.

The signal tests send real signals to a real ``improved-gan`` subprocess. To make the step at which a signal
lands deterministic, the subprocess runs the command line through a small wrapper that pauses after a chosen step
until a stop has been requested (it polls the flag the handlers set; the signal itself comes from this process).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from data_files import write_idx_dataset
from improved_gan.cli import main

TINY = ["--set", "data.batch_size=20", "--set", "model.init_batch=40", "--quiet"]
SCHEDULE = ["--steps", "8", "--checkpoint-every", "4", "--eval-every", "3"]

# Runs the CLI; after step PAUSE_AT it writes its pid to MARK and waits (up to 60 s) until a stop is requested.
# With PAUSE_IN_SAVE set it also waits, after the stop request, inside the fsync of the temporary last.pt (for a
# second Ctrl-C in the middle of the checkpoint), announcing it in MARK + ".save".
WRAPPER = textwrap.dedent(
    """
    import os, sys, time
    from improved_gan.training import loop, run

    pause_at = int(os.environ["PAUSE_AT"])
    mark = os.environ["MARK"]
    original = loop.Trainer.train_step

    def wait(cond, path):
        with open(path + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(path + ".tmp", path)
        t0 = time.time()
        while not cond() and time.time() - t0 < 60:
            time.sleep(0.01)

    def step(self):
        out = original(self)
        if self.step == pause_at:
            wait(lambda: run.stop_requested(), mark)
        return out

    loop.Trainer.train_step = step
    if os.environ.get("PAUSE_IN_SAVE"):
        real_fsync = os.fsync

        def fsync(fd):
            if ".last.pt." in os.readlink(f"/proc/self/fd/{fd}") and run.stop_requested():
                wait(lambda: False, mark + ".save")  # returns only by the KeyboardInterrupt of a 2nd SIGINT
            return real_fsync(fd)

        os.fsync = fsync
    from improved_gan.cli import main

    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.fixture(scope="module")
def fake_fmnist(tmp_path_factory):
    d = tmp_path_factory.mktemp("fmnist")
    write_idx_dataset(d, n_train=200, n_test=50, seed=3)
    return d


@pytest.fixture(scope="module")
def full_run(fake_fmnist, tmp_path_factory):
    """The uninterrupted reference run of SCHEDULE."""
    out = tmp_path_factory.mktemp("full") / "run"
    assert _train(fake_fmnist, out) == 0
    return out


def _train(data_dir, out, *extra):
    argv = ["train", "fmnist-ssl", "--data-dir", str(data_dir), "--out", str(out), *TINY, *SCHEDULE, *extra]
    return main(argv)


def _tensors_equal(a, b, path="") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            if k != "wall_seconds":
                _tensors_equal(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _tensors_equal(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def _metric_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    for r in rows:
        r.pop("wall_seconds"), r.pop("images_per_second")
    return rows


def _assert_same_run(a: Path, b: Path) -> None:
    _tensors_equal(
        torch.load(a / "checkpoints" / "last.pt", weights_only=True),
        torch.load(b / "checkpoints" / "last.pt", weights_only=True),
    )
    assert _metric_rows(a) == _metric_rows(b)
    assert (a / "samples" / "latest.png").read_bytes() == (b / "samples" / "latest.png").read_bytes()


def _ckpt_step(run: Path) -> int:
    return int(torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"])


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"exited {proc.returncode} before {path.name}: {err[-2000:]}")
        assert time.time() < deadline, f"no {path}"
        time.sleep(0.02)


def _start_paused(tmp_path, data_dir, out, pause_at, *extra, in_save=False) -> tuple[subprocess.Popen, Path]:
    script = tmp_path / "wrapper.py"
    script.write_text(WRAPPER)
    mark = tmp_path / f"mark-{out.name}"
    env = {**os.environ, "PAUSE_AT": str(pause_at), "MARK": str(mark), "PYTHONUNBUFFERED": "1"}
    if in_save:
        env["PAUSE_IN_SAVE"] = "1"
    argv = ["train", "fmnist-ssl", "--data-dir", str(data_dir), "--out", str(out), *TINY, *SCHEDULE, *extra]
    proc = subprocess.Popen(
        [sys.executable, str(script), *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, mark


# ---------------------------------------------------------------------------------------------- stop requests
@pytest.mark.parametrize(
    "sig, code, continue_with",
    [
        (signal.SIGTERM, 143, "resume"),
        pytest.param(signal.SIGINT, 130, "resume", marks=pytest.mark.slow),
        pytest.param(signal.SIGUSR1, 138, "auto-resume", marks=pytest.mark.slow),
    ],
)
def test_stop_signal_writes_a_checkpoint_and_the_run_continues_bit_identically(
    fake_fmnist, full_run, tmp_path, capsys, sig, code, continue_with
):
    part = tmp_path / "part"
    # stop at step 3, before the first scheduled checkpoint (step 4): without the stop checkpoint all is lost
    proc, mark = _start_paused(tmp_path, fake_fmnist, part, 3)
    _wait_for(mark, proc)
    if sig == signal.SIGTERM:  # while it runs, the folder is locked against a second writer
        assert main(["resume", str(part), "--data-dir", str(fake_fmnist), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (
            f"error: {part}: in use by another improved-gan process (pid {proc.pid}); "
            "wait for it to finish or stop it"
        )
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert err.strip().splitlines() == [
        f"stopped by {sig.name}: {part} at step 3, checkpoint written; "
        f"continue with: improved-gan resume {part} --data-dir {fake_fmnist}"
    ]
    assert _ckpt_step(part) == 3
    assert (part / "generator.pt").is_file() and not (part / "summary.json").exists()
    assert not list(part.rglob("*.tmp"))
    if continue_with == "resume":
        assert main(["resume", str(part), "--data-dir", str(fake_fmnist), "--quiet"]) == 0
    else:
        assert _train(fake_fmnist, part, "--auto-resume") == 0
    _assert_same_run(full_run, part)


def test_second_ctrl_c_during_the_checkpoint_keeps_the_previous_one(fake_fmnist, full_run, tmp_path):
    part = tmp_path / "part"
    proc, mark = _start_paused(tmp_path, fake_fmnist, part, 6, in_save=True)
    _wait_for(mark, proc)
    proc.send_signal(signal.SIGINT)
    save_mark = Path(str(mark) + ".save")
    _wait_for(save_mark, proc)  # now inside the write of the step-6 last.pt
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("error: interrupted")
    assert "Traceback" not in err
    assert _ckpt_step(part) == 4  # the previous checkpoint, intact and loadable
    assert not list(part.rglob("*.tmp")) and not list(part.rglob(".*.tmp"))
    assert main(["resume", str(part), "--data-dir", str(fake_fmnist), "--quiet"]) == 0
    _assert_same_run(full_run, part)
