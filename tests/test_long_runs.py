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
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from data_files import write_idx_dataset
from improved_gan.cli import main
from run_checks import assert_tensors_equal, metric_rows

TINY = ["--set", "data.batch_size=20", "--set", "model.init_batch=40", "--quiet"]
SCHEDULE = ["--steps", "8", "--checkpoint-every", "4", "--eval-every", "3"]

# Runs the CLI; after step PAUSE_AT it writes its pid to MARK and waits (up to 60 s) until a stop is requested.
# With PAUSE_IN_SAVE set it also waits, after the stop request, inside the fsync of the temporary last.pt (for a
# second Ctrl-C in the middle of the checkpoint), announcing it in MARK + ".save".
WRAPPER = textwrap.dedent(
    """
    import os, sys, time
    from improved_gan.training import run, trainer

    pause_at = int(os.environ["PAUSE_AT"])
    mark = os.environ["MARK"]
    original = trainer.Trainer.train_step

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

    trainer.Trainer.train_step = step
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


def _assert_same_run(a: Path, b: Path) -> None:
    assert_tensors_equal(
        torch.load(a / "checkpoints" / "last.pt", weights_only=True),
        torch.load(b / "checkpoints" / "last.pt", weights_only=True),
    )
    assert metric_rows(a) == metric_rows(b)
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


# ------------------------------------------------------------------------------------------------- divergence
def _all_finite(obj) -> bool:
    if isinstance(obj, torch.Tensor):
        return not obj.is_floating_point() or bool(torch.isfinite(obj).all())
    if isinstance(obj, dict):
        return all(_all_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(_all_finite(v) for v in obj)
    return not isinstance(obj, float) or obj == obj and abs(obj) != float("inf")


def test_divergence_stops_with_one_error_line_and_keeps_the_last_finite_checkpoint(
    fake_fmnist, tmp_path, capsys
):
    import re

    run = tmp_path / "nan"
    d = str(fake_fmnist)
    argv = ["train", "fmnist-ssl", "--data-dir", d, "--out", str(run), *TINY, "--steps", "20"]
    assert main([*argv, "--checkpoint-every", "1", "--eval-every", "1", "--set", "optim.lr=1e30"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    m = re.fullmatch(
        rf"error: {re.escape(str(run))}: training diverged at step (\d+) \((.+)\); "
        rf"{re.escape(str(run / 'checkpoints' / 'last.pt'))} holds step (\d+), the last finite state; .*",
        err,
    )
    assert m, err
    step, saved = int(m[1]), int(m[3])
    assert 1 <= saved == step - 1  # checkpoints every step: the one before the divergence is the last one
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == saved and _all_finite(ckpt)
    assert _all_finite(torch.load(run / "generator.pt", weights_only=True))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["diverged"]["step"] == step
    rows = metric_rows(run)
    assert [r["step"] for r in rows] == list(range(1, step))  # no row of the diverged step
    assert all(v is not None for r in rows for v in r.values())
    # the diverged run is not continued, by resume or by --auto-resume
    assert main(["resume", str(run), "--data-dir", d, "--quiet"]) == 3
    assert "diverged at step" in capsys.readouterr().err
    assert (
        main(
            [*argv, "--checkpoint-every", "1", "--eval-every", "1", "--set", "optim.lr=1e30", "--auto-resume"]
        )
        == 3
    )
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == saved


def test_divergence_is_read_at_the_checkpoint_where_steps_are_not_checked(
    fake_fmnist, tmp_path, monkeypatch, capsys
):
    """The CUDA path (no host read per step), run on the CPU: the step-3 NaN is reported from the record at the
    step-4 checkpoint, which is not written."""
    from improved_gan.training import schedule, trainer

    monkeypatch.setattr(schedule, "_check_every_step", lambda trainer: False)
    steps = []
    original = trainer.Trainer.train_step

    def counting(self):
        steps.append(self.step + 1)
        return original(self)

    monkeypatch.setattr(trainer.Trainer, "train_step", counting)
    run = tmp_path / "nan"
    argv = ["train", "fmnist-ssl", "--data-dir", str(fake_fmnist), "--out", str(run), *TINY, "--steps", "20"]
    assert main([*argv, "--checkpoint-every", "4", "--eval-every", "4", "--set", "optim.lr=1e30"]) == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        f"error: {run}: training diverged at step 3 (loss_d = nan); no checkpoint was written"
    )
    assert steps == [1, 2, 3, 4]  # trained on to the checkpoint, then stopped there
    assert not (run / "checkpoints" / "last.pt").exists()
    assert not (run / "metrics.jsonl").read_text().strip()


def test_divergence_before_any_checkpoint_writes_none(fake_fmnist, tmp_path, capsys):
    run = tmp_path / "nan"
    argv = ["train", "fmnist-ssl", "--data-dir", str(fake_fmnist), "--out", str(run), *TINY, "--steps", "6"]
    assert main([*argv, "--set", "optim.lr=1e30"]) == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {run}: training diverged at step ") and "no checkpoint was written" in err
    assert not (run / "checkpoints" / "last.pt").exists() and not (run / "generator.pt").exists()


# ---------------------------------------------------------------------------------------------- I/O errors
R8 = [
    "--set",
    "data.batch_size=16",
    "--set",
    "model.init_batch=16",
    "--set",
    "train.eval_samples=100",
    "--quiet",
]


def _train_ring8(out, *extra):
    return main(["train", "ring8-gan", "--out", str(out), *R8, *extra])


@pytest.fixture
def tmpfs(tmp_path):
    """A fresh 8 MiB tmpfs (root only: elsewhere the test is skipped)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path, leave: int) -> Path:
    """Fill the file system of ``mnt`` until ``leave`` bytes are free."""
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    filler = mnt / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(free - leave, 0))
    return filler


def _state_size(trainer) -> int:
    import io

    buf = io.BytesIO()
    torch.save(trainer.state_dict(), buf)
    return len(buf.getvalue())


def _fill_after_step(monkeypatch, mnt: Path, step: int, leave_fraction: float) -> None:
    """After ``step`` training steps, fill the disk up to ``leave_fraction`` of one checkpoint's size."""
    from improved_gan.training import trainer

    original = trainer.Trainer.train_step

    def step_then_fill(self):
        out = original(self)
        if self.step == step:
            _fill(mnt, int(leave_fraction * _state_size(self)))
        return out

    monkeypatch.setattr(trainer.Trainer, "train_step", step_then_fill)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def test_full_disk_while_writing_last_pt(tmpfs, monkeypatch, capsys):
    run = tmpfs / "run"
    _fill_after_step(monkeypatch, tmpfs, 3, 0.5)  # the step-4 checkpoint does not fit
    assert _train_ring8(run, "--steps", "6", "--checkpoint-every", "2", "--eval-every", "100") == 74
    assert (
        _one_error_line(capsys)
        == f"error: {run / 'checkpoints' / 'last.pt'}: cannot write (No space left on device)"
    )
    assert _ckpt_step(run) == 2  # the previous checkpoint, loadable
    assert not list(run.rglob(".*.tmp"))
    (tmpfs / "filler").unlink()
    monkeypatch.undo()
    assert main(["resume", str(run), "--quiet"]) == 0 and _ckpt_step(run) == 6


def test_full_disk_while_writing_a_keep_every_copy(tmpfs, monkeypatch, capsys):
    run = tmpfs / "run"
    _fill_after_step(monkeypatch, tmpfs, 1, 1.5)  # the first last.pt fits, its keep copy does not
    extra = ["--steps", "4", "--checkpoint-every", "2", "--eval-every", "100", "--set", "train.keep_every=2"]
    assert _train_ring8(run, *extra) == 74
    copy = run / "checkpoints" / "step_0000002.pt"
    assert _one_error_line(capsys) == f"error: {copy}: cannot write (No space left on device)"
    assert not copy.exists()  # no partial copy under the final name
    assert not list(run.rglob(".*.tmp"))
    assert _ckpt_step(run) == 2


def test_an_oserror_while_writing_a_run_file_is_one_error_line(tmp_path, monkeypatch, capsys):
    """The same without root: an injected EIO in the fsync of the step-4 last.pt."""
    run = tmp_path / "run"
    real_fsync = os.fsync
    calls = {"n": 0}

    def failing_fsync(fd):
        if ".last.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    assert _train_ring8(run, "--steps", "6", "--checkpoint-every", "2", "--eval-every", "100") == 74
    assert (
        _one_error_line(capsys)
        == f"error: {run / 'checkpoints' / 'last.pt'}: cannot write (Input/output error)"
    )
    assert _ckpt_step(run) == 2 and not list(run.rglob(".*.tmp"))


# ------------------------------------------------------------------------------------------------ file modes
@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_run_files_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    run = tmp_path / "run"
    old = os.umask(umask)
    try:
        extra = [
            "--steps",
            "4",
            "--checkpoint-every",
            "2",
            "--eval-every",
            "2",
            "--set",
            "train.keep_every=2",
        ]
        assert _train_ring8(run, *extra) == 0
    finally:
        os.umask(old)
    files = [p for p in run.rglob("*") if p.is_file()]
    names = {str(p.relative_to(run)) for p in files}
    assert {"config.json", "summary.json", "metrics.jsonl", "generator.pt", "curves.png"} <= names
    assert {"checkpoints/last.pt", "checkpoints/step_0000002.pt", "samples/latest.png"} <= names
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == file_mode, p
    for p in [run, *[p for p in run.rglob("*") if p.is_dir()]]:
        assert stat.S_IMODE(p.stat().st_mode) == dir_mode, p


# ------------------------------------------------------------------------------------------------- the lock
def test_a_second_writer_is_refused_and_a_killed_holder_leaves_no_stale_lock(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    # another process holds the folder's lock (as a live run does), then dies by SIGKILL
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(run / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, str(os.getpid()).encode())\n"
            "print('locked', flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert _train_ring8(run, "--steps", "2") == 2
        assert _one_error_line(capsys) == (
            f"error: {run}: in use by another improved-gan process (pid {holder.pid}); "
            "wait for it to finish or stop it"
        )
        assert not (run / "config.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert _train_ring8(run, "--steps", "2") == 0  # the kernel released the dead holder's lock
    assert main(["resume", str(run), "--quiet"]) == 0  # and the finished run released its own


# --------------------------------------------------------------------------------------------- --auto-resume
def test_auto_resume_starts_continues_and_refuses_another_configuration(tmp_path, capsys):
    run = tmp_path / "run"
    sched = ["--steps", "4", "--checkpoint-every", "2", "--eval-every", "2"]
    assert _train_ring8(run, *sched, "--auto-resume") == 0  # nothing there: starts
    rows = (run / "metrics.jsonl").read_text()
    capsys.readouterr()
    assert _train_ring8(run, *sched, "--auto-resume") == 0  # finished: left as it is
    assert capsys.readouterr().err.strip() == f"{run}: already finished at step 4 of 4"
    assert (run / "metrics.jsonl").read_text() == rows
    assert _train_ring8(run, *sched, "--auto-resume", "--set", "optim.lr=0.5") == 2
    err = _one_error_line(capsys)
    assert err.startswith(f"error: {run}: holds a run of another configuration (optim.lr: ")
    assert "0.5 now" in err
    assert (
        _train_ring8(run, "--steps", "6", "--checkpoint-every", "2", "--eval-every", "2", "--auto-resume")
        == 2
    )
    assert "train.steps: 4 in the folder, 6 now" in _one_error_line(capsys)
    assert _train_ring8(run, *sched) == 2  # without --auto-resume an existing run is refused, as before
    assert "already holds a run" in _one_error_line(capsys)


def test_auto_resume_of_a_run_killed_before_its_first_checkpoint_starts_over(tmp_path, capsys):
    full, run = tmp_path / "full", tmp_path / "run"
    sched = ["--steps", "4", "--checkpoint-every", "4", "--eval-every", "2"]
    assert _train_ring8(full, *sched) == 0
    assert _train_ring8(run, *sched) == 0
    for name in ("checkpoints/last.pt", "summary.json", "generator.pt"):  # as if killed at step 3
        (run / name).unlink()
    assert _train_ring8(run, *sched, "--auto-resume") == 0
    assert_tensors_equal(
        torch.load(full / "checkpoints" / "last.pt", weights_only=True),
        torch.load(run / "checkpoints" / "last.pt", weights_only=True),
    )
    assert metric_rows(full) == metric_rows(run)


# ------------------------------------------------------------------------------------- the review bugs
def test_resume_of_a_run_that_spent_its_time_budget_runs_no_more_steps(fake_fmnist, tmp_path, capsys):
    run = tmp_path / "run"
    d = str(fake_fmnist)
    argv = ["train", "fmnist-ssl", "--data-dir", d, "--out", str(run), *TINY, "--steps", "100000"]
    assert main([*argv, "--time-budget", "0.01"]) == 0
    step = _ckpt_step(run)
    rows, summary = (run / "metrics.jsonl").read_text(), (run / "summary.json").read_text()
    assert json.loads(summary)["stopped_by_time_budget"] is True and json.loads(summary)["steps"] == step
    capsys.readouterr()
    assert main(["resume", str(run), "--data-dir", d, "--quiet"]) == 0
    assert capsys.readouterr().err.strip() == (
        f"{run}: stopped on its time budget at step {step} of 100000; give --time-budget MINUTES to train longer"
    )
    assert _ckpt_step(run) == step
    assert (run / "metrics.jsonl").read_text() == rows and (run / "summary.json").read_text() == summary
    # a new budget: that many more minutes
    assert main(["resume", str(run), "--data-dir", d, "--quiet", "--time-budget", "0.01"]) == 0
    after = json.loads((run / "summary.json").read_text())
    assert after["stopped_by_time_budget"] is True and after["steps"] == _ckpt_step(run) > step
    total = json.loads((run / "config.json").read_text())["run"]["time_budget_minutes"]
    assert total == pytest.approx(json.loads(summary)["wall_seconds"] / 60 + 0.01, abs=0.005)


def test_generator_pt_of_a_checkpoint_without_evaluation_has_fresh_vbn_statistics(fake_fmnist, tmp_path):
    from improved_gan.nn import virtual_batch_reference
    from improved_gan.training import trainer
    from improved_gan.training.evaluate import sample_run
    from improved_gan.training.experiment import build_networks
    from improved_gan.training.run import read_run_config

    run = tmp_path / "gan"
    small = ["--set", "data.batch_size=8", "--set", "model.init_batch=16", "--set", "train.metrics=none"]
    original = trainer.Trainer.train_step

    def crash_at_3(self):
        if self.step == 3:
            raise KeyboardInterrupt  # a crash after the step-2 checkpoint (step 2 had no evaluation)
        return original(self)

    trainer.Trainer.train_step = crash_at_3
    try:
        code = main(
            ["train", "fmnist-gan", "--data-dir", str(fake_fmnist), "--out", str(run), "--quiet", *small]
            + ["--steps", "4", "--checkpoint-every", "2", "--eval-every", "4"]
        )
    finally:
        trainer.Trainer.train_step = original
    assert code == 130
    assert not (run / "metrics.jsonl").read_text().strip()  # no evaluation ran
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 2
    # what the trained generator draws: its step-2 weights, reference statistics computed for those weights
    cfg, info = read_run_config(run)
    g, _ = build_networks(cfg, image_shape=tuple(info["image_shape"]), num_classes=info["num_classes"])
    g.load_state_dict(state["G"])
    g.eval()
    with torch.no_grad():
        with virtual_batch_reference(g):
            g(state["z_ref"])
        expected = g(g.sample_z(16, generator=torch.Generator().manual_seed(0)))
    got = sample_run(run, num=16, out=tmp_path / "s.png", seed=0)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_to_cpu_moves_every_nested_tensor():
    from improved_gan.training.checkpoint import to_cpu

    x = {"a": [torch.ones(2), (torch.zeros(1), 3)], "b": {"c": torch.arange(3)}, "d": "s"}
    y = to_cpu(x)
    assert y["d"] == "s" and y["a"][1][1] == 3
    assert torch.equal(y["a"][0], torch.ones(2)) and torch.equal(y["b"]["c"], torch.arange(3))
    assert isinstance(y["a"][1], tuple)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_checkpoints_of_a_cuda_run_hold_cpu_tensors_only(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "ring8-gan", "--out", str(run), *R8, "--steps", "2", "--device", "cuda"]) == 0
    for name in ("checkpoints/last.pt", "generator.pt"):
        state = torch.load(run / name, weights_only=True)  # no map_location: loads on a machine without CUDA

        def walk(o, path=name):
            if isinstance(o, torch.Tensor):
                assert o.device.type == "cpu", path
            elif isinstance(o, dict):
                for k, v in o.items():
                    walk(v, f"{path}.{k}")
            elif isinstance(o, (list, tuple)):
                for i, v in enumerate(o):
                    walk(v, f"{path}[{i}]")

        walk(state)


# ------------------------------------------------------------------------------------------------- ablate
def _ablate_argv(out):
    return ["ablate", "ring8-gan", "--variants=-ls", "--seeds", "1", "--steps", "4", "--out", str(out), *R8]


def test_ablate_stops_after_the_current_runs_checkpoint_and_the_same_command_continues(
    tmp_path, monkeypatch, capsys
):
    from improved_gan.training import trainer

    full, part = tmp_path / "full", tmp_path / "part"
    assert main(_ablate_argv(full)) == 0
    original = trainer.Trainer.train_step
    sent = []

    def signal_in_second_run(self):
        out = original(self)
        if self.step == 2 and self.cfg.loss.real_target == 1.0 and not sent:  # the -ls run
            sent.append(1)
            os.kill(os.getpid(), signal.SIGTERM)  # a real signal, handled like one from a scheduler
        return out

    monkeypatch.setattr(trainer.Trainer, "train_step", signal_in_second_run)
    capsys.readouterr()
    assert main(_ablate_argv(part)) == 143
    run = part / "-ls" / "seed1"
    err = capsys.readouterr().err.strip()
    assert err == (
        f"stopped by SIGTERM: {run} at step 2, checkpoint written; continue with: improved-gan "
        + " ".join(_ablate_argv(part))
    )
    assert _ckpt_step(run) == 2 and not (part / "ablation.json").exists()
    assert (part / "all" / "seed1" / "summary.json").is_file()
    monkeypatch.undo()
    assert main(_ablate_argv(part)) == 0
    assert_tensors_equal(
        torch.load(full / "-ls" / "seed1" / "checkpoints" / "last.pt", weights_only=True),
        torch.load(run / "checkpoints" / "last.pt", weights_only=True),
    )
    a, b = (json.loads((d / "ablation.json").read_text()) for d in (full, part))
    assert [v["metrics"] for v in a["variants"]] == [v["metrics"] for v in b["variants"]]


def test_ablate_records_a_diverged_run_and_goes_on(tmp_path, monkeypatch, capsys):
    from improved_gan.training import trainer

    out = tmp_path / "abl"
    original = trainer.Trainer.train_step

    def nan_in_ls_run(self):
        result = original(self)
        if self.cfg.loss.real_target == 1.0 and self.step == 3:  # the -ls run: a NaN loss at step 3
            result["loss_d"] = float("nan")
            self.meter.diverged = (3, "loss_d", float("nan"))
        return result

    monkeypatch.setattr(trainer.Trainer, "train_step", nan_in_ls_run)
    assert main(_ablate_argv(out)) == 0
    captured = capsys.readouterr()
    assert f"warning: {out / '-ls' / 'seed1'}: training diverged at step 3 (loss_d = nan)" in captured.err
    md = (out / "ablation.md").read_text()
    assert "Diverged (left out of the means): -ls seed 1 (step 3)" in md
    result = json.loads((out / "ablation.json").read_text())
    assert result["variants"][1]["metrics"] == {} and result["variants"][0]["metrics"]


# --------------------------------------------------------------- resuming: what it says, what it refuses
def _killed_after_step_2(run: Path) -> None:
    """Make a finished 4-step run (``keep_every=2``) look killed after its step-2 checkpoint."""
    (run / "checkpoints" / "step_0000002.pt").replace(run / "checkpoints" / "last.pt")
    for name in ("summary.json", "generator.pt"):
        (run / name).unlink()


SCHED4 = ["--steps", "4", "--checkpoint-every", "2", "--eval-every", "2", "--set", "train.keep_every=2"]


@pytest.fixture(scope="module")
def ring8_run(tmp_path_factory):
    """A finished 4-step ring8 run with a copy of its step-2 checkpoint (tests copy it before changing it)."""
    out = tmp_path_factory.mktemp("ring8") / "run"
    assert _train_ring8(out, *SCHED4) == 0
    return out


@pytest.mark.parametrize("how", ["auto-resume", "resume"])
def test_resuming_prints_one_line_naming_the_folder_and_step(ring8_run, tmp_path, capsys, how):
    full, run = ring8_run, tmp_path / "run"
    shutil.copytree(full, run)
    _killed_after_step_2(run)
    capsys.readouterr()
    if how == "auto-resume":
        assert _train_ring8(run, *SCHED4, "--auto-resume") == 0
    else:
        assert main(["resume", str(run), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [f"resuming {run} from step 2 (checkpoints/last.pt)"]
    assert_tensors_equal(
        torch.load(full / "checkpoints" / "last.pt", weights_only=True),
        torch.load(run / "checkpoints" / "last.pt", weights_only=True),
    )


def _without(key: str):
    def edit(good: bytes, path: Path) -> None:
        path.write_bytes(good)
        state = torch.load(path, weights_only=True)
        del state[key]
        torch.save(state, path)

    return edit


@pytest.mark.parametrize(
    "edit, reason",
    [
        (
            lambda good, p: p.write_bytes(np.random.default_rng(0).bytes(4096)),
            "not a checkpoint (truncated or corrupt)",
        ),
        (lambda good, p: p.write_bytes(b"not a checkpoint"), "not a checkpoint (truncated or corrupt)"),
        (lambda good, p: p.write_bytes(good[: len(good) // 2]), "not a checkpoint (truncated or corrupt)"),
        (lambda good, p: p.write_bytes(good[:-10]), "not a checkpoint (truncated or corrupt)"),
        (lambda good, p: p.write_bytes(b""), "empty file (0 bytes), not a checkpoint"),
        (_without("step"), "missing 'step'"),
        (_without("opt_g"), "missing 'opt_g'"),
        (
            lambda good, p: torch.save(torch.nn.Linear(2, 2), p),
            "holds Python objects other than tensors and plain data, so it was not written by improved-gan "
            "(such files are never unpickled: that could run code)",
        ),
    ],
    ids=["random-bytes", "text", "half", "last-bytes-cut", "empty", "no-step", "no-opt_g", "pickled-module"],
)
def test_a_bad_last_pt_is_one_line_naming_the_file_and_what_is_wrong(
    ring8_run, tmp_path, capsys, edit, reason
):
    run = tmp_path / "run"
    shutil.copytree(ring8_run, run)
    last = run / "checkpoints" / "last.pt"
    good = last.read_bytes()
    _killed_after_step_2(run)
    edit(good, last)
    capsys.readouterr()
    for argv in (
        ["resume", str(run), "--quiet"],
        ["train", "ring8-gan", "--out", str(run), *R8, *SCHED4, "--auto-resume"],
    ):
        assert main(argv) == 2
        err = _one_error_line(capsys)
        assert err == f"error: {last}: {reason}"  # the whole sentence, never torch's advice on weights_only
        assert "weights_only" not in err


def test_ablate_resumes_an_interrupted_run_with_what_is_left_of_its_budget(tmp_path, capsys):
    """``--time-budget`` of ablate is per run, in all: a run interrupted after 61 s of a 1-minute budget trains
    one more step (the budget is read after each step), not one more minute."""
    out = tmp_path / "abl"
    argv = [
        *_ablate_argv(out),
        "--time-budget",
        "1",
        "--set",
        "train.checkpoint_every=2",
        "--set",
        "train.keep_every=2",
    ]
    assert main(argv) == 0
    run = out / "all" / "seed1"
    assert json.loads((run / "summary.json").read_text())["steps"] == 4
    _killed_after_step_2(run)
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    state["wall_seconds"] = 61.0  # as if killed 61 s into its 60 s budget
    torch.save(state, run / "checkpoints" / "last.pt")
    capsys.readouterr()
    assert main(argv) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "stopped_by_time_budget" and summary["steps"] == 3
    assert json.loads((run / "config.json").read_text())["run"]["time_budget_minutes"] == 1.0
