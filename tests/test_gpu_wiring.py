"""The GPU options and the batch rule, wired into the configuration, the trainer and the run (README, "GPU" and
"Multi-process and multi-node training"): what the CPU can check."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess

import pytest
import torch
import torch.multiprocessing as mp

from data_files import write_idx_dataset
from improved_gan.cli import main
from improved_gan.errors import ConfigError
from improved_gan.training import build, schedule
from improved_gan.training import distributed as D_
from improved_gan.training.config import Config, from_dict, override
from improved_gan.training.device_options import current_device_options
from improved_gan.training.presets import get_preset
from improved_gan.training.trainer import Trainer
from run_checks import assert_tensors_equal, metric_rows, one_thread_env, torchrun_cmd
from test_presets_run import fake_data


@pytest.fixture(scope="module")
def fake_fmnist(tmp_path_factory):
    d = tmp_path_factory.mktemp("fmnist")
    write_idx_dataset(d, n_train=200, n_test=50, seed=11)
    return d


# ------------------------------------------------------------------------------------------ configuration
def test_gpu_options_are_configuration_fields_with_the_documented_defaults():
    tc = Config().train
    assert (tc.tf32, tc.cudnn_benchmark, tc.deterministic, tc.channels_last, tc.async_checkpoints) == (
        True,
        True,
        False,
        False,
        True,
    )
    cfg = override(Config(), ["train.tf32=false", "train.channels_last=on", "train.async_checkpoints=0"])
    assert (cfg.train.tf32, cfg.train.channels_last, cfg.train.async_checkpoints) == (False, True, False)
    # a config.json written before these fields existed reads back with the defaults
    old = Config().to_dict()
    for key in ("tf32", "cudnn_benchmark", "deterministic", "channels_last", "async_checkpoints"):
        del old["train"][key]
    assert from_dict(old) == Config()


def test_deterministic_needs_the_autotuner_off():
    with pytest.raises(ConfigError) as info:
        override(Config(), ["train.deterministic=true"])
    msg = str(info.value)
    assert "\n" not in msg and "train.deterministic=true" in msg and "train.cudnn_benchmark=false" in msg
    cfg = override(Config(), ["train.deterministic=true", "train.cudnn_benchmark=false"])
    assert cfg.train.deterministic and not cfg.train.cudnn_benchmark
    with pytest.raises(ConfigError, match="expected a value of type bool"):
        override(Config(), ["train.tf32=maybe"])


def test_deterministic_with_the_autotuner_is_one_error_line_on_the_command_line(tmp_path, capsys):
    code = main(["train", "fmnist-ssl", "--out", str(tmp_path / "r"), "--set", "train.deterministic=true"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: train.deterministic=true")


# ----------------------------------------------------------------------------------------- device options
def test_build_trainer_applies_the_options_on_cuda_before_reading_the_data(monkeypatch):
    calls = []

    class Stop(Exception):
        pass

    monkeypatch.setattr(build, "apply_device_options", lambda **kw: calls.append(("options", kw)))

    def no_data(cfg, **kw):
        calls.append(("data", kw["device"]))
        raise Stop

    monkeypatch.setattr(build, "load_train_data", no_data)
    cfg = override(get_preset("fmnist-ssl"), ["train.tf32=false", "train.cudnn_benchmark=false"])
    cfg = override(cfg, ["train.deterministic=true"])
    with pytest.raises(Stop):
        build.build_trainer(cfg, data_dir=None, device="cuda:0")
    assert calls == [
        ("options", {"tf32": False, "cudnn_benchmark": False, "deterministic": True}),
        ("data", "cuda:0"),
    ]
    calls.clear()
    with pytest.raises(Stop):
        build.build_trainer(cfg, data_dir=None, device="cpu")
    assert calls == [("data", "cpu")]  # nothing process-wide changes for a CPU run


def test_a_cpu_run_leaves_the_process_settings_and_the_memory_order_alone(fake_fmnist):
    before = current_device_options()
    cfg = override(
        get_preset("cifar10-ssl"),
        ["data.batch_size=4", "model.init_batch=8", "data.labels_per_class=1", "train.channels_last=true"],
    )
    trainer = Trainer(cfg, fake_data("cifar10", n=20))
    assert current_device_options() == before
    assert not trainer.channels_last  # channels_last is for CUDA only
    assert all(p.is_contiguous() for p in [*trainer.G.parameters(), *trainer.D.parameters()])


def _conv_trainer(channels_last: bool) -> Trainer:
    cfg = override(
        get_preset("cifar10-ssl"),
        ["data.batch_size=4", "model.init_batch=8", "data.labels_per_class=1", "model.dropout=0"],
    )
    cfg = override(cfg, ["model.input_dropout=0"])
    trainer = Trainer(cfg, fake_data("cifar10", n=20))
    if channels_last:  # what a CUDA run does after moving the nets, run here on the CPU
        trainer._to_channels_last(trainer.data)
    return trainer


def test_channels_last_changes_the_layout_not_the_step():
    a, b = _conv_trainer(False), _conv_trainer(True)
    conv = [p for p in b.D.parameters() if p.dim() == 4]
    assert conv and all(p.is_contiguous(memory_format=torch.channels_last) for p in conv)
    assert b.data.train_x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(a.data.train_x, b.data.train_x)  # the same values, other strides
    la, lb = a.train_step(), b.train_step()
    for key in ("loss_d", "loss_g"):
        assert la[key] == pytest.approx(lb[key], rel=1e-4)
    for (name, p), q in zip(a.D.named_parameters(), b.D.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)


# ------------------------------------------------------------------------------------- background writes
TINY = ["--set", "data.batch_size=20", "--set", "model.init_batch=40", "--quiet"]


def _train(data_dir, out, *extra) -> int:
    argv = ["train", "fmnist-ssl", "--data-dir", str(data_dir), "--out", str(out), *TINY, *extra]
    return main(argv)


@pytest.fixture
def background_writes(monkeypatch):
    """The CUDA path of the checkpoint writes (a background thread), run on the CPU."""
    monkeypatch.setattr(schedule, "_background_writes", lambda trainer: trainer.cfg.train.async_checkpoints)


def test_background_writes_give_the_files_of_synchronous_writes(fake_fmnist, tmp_path, background_writes):
    sched = ["--steps", "6", "--checkpoint-every", "2", "--eval-every", "3", "--set", "train.keep_every=2"]
    assert _train(fake_fmnist, tmp_path / "bg", *sched) == 0
    assert _train(fake_fmnist, tmp_path / "sync", *sched, "--set", "train.async_checkpoints=false") == 0
    for name in ("checkpoints/last.pt", "checkpoints/step_0000002.pt", "checkpoints/step_0000004.pt"):
        assert_tensors_equal(
            torch.load(tmp_path / "bg" / name, weights_only=True),
            torch.load(tmp_path / "sync" / name, weights_only=True),
            name,
        )
    gen = [torch.load(tmp_path / r / "generator.pt", weights_only=True) for r in ("bg", "sync")]
    assert gen[0]["step"] == 6 and gen[0]["format"] == gen[1]["format"]
    assert_tensors_equal(gen[0]["G"], gen[1]["G"])
    assert metric_rows(tmp_path / "bg") == metric_rows(tmp_path / "sync")
    assert not list((tmp_path / "bg").rglob("*.tmp"))


def test_a_failed_background_write_ends_the_run_at_the_next_checkpoint_with_one_line(
    fake_fmnist, tmp_path, monkeypatch, capsys, background_writes
):
    """An EIO in the fsync of the step-4 last.pt, on the writer thread: the run stops at the step-6 checkpoint
    with the line and status of a synchronous write's error; the step-2 checkpoint stays."""
    from improved_gan.training import trainer as trainer_module

    run = tmp_path / "run"
    real_fsync, calls, steps = os.fsync, {"n": 0}, []

    def failing_fsync(fd):
        if ".last.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_fsync(fd)

    original = trainer_module.Trainer.train_step

    def counting(self):
        steps.append(self.step + 1)
        return original(self)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    monkeypatch.setattr(trainer_module.Trainer, "train_step", counting)
    assert _train(fake_fmnist, run, "--steps", "10", "--checkpoint-every", "2", "--eval-every", "100") == 74
    err = capsys.readouterr().err.strip()
    assert err == f"error: {run / 'checkpoints' / 'last.pt'}: cannot write (Input/output error)"
    assert steps == [1, 2, 3, 4, 5, 6]  # reported at the step-6 checkpoint, not later
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == 2
    assert not list(run.rglob(".*.tmp"))


def test_a_failed_final_write_is_reported_before_the_summary(
    fake_fmnist, tmp_path, monkeypatch, capsys, background_writes
):
    run = tmp_path / "run"
    real_fsync = os.fsync

    def failing_fsync(fd):
        if ".generator.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    assert _train(fake_fmnist, run, "--steps", "3", "--checkpoint-every", "2", "--eval-every", "100") == 74
    err = capsys.readouterr().err.strip()
    assert err == f"error: {run / 'generator.pt'}: cannot write (No space left on device)"
    assert not (run / "summary.json").exists()


def test_divergence_waits_for_the_write_in_flight(fake_fmnist, tmp_path, capsys, background_writes):
    import re

    run = tmp_path / "nan"
    argv = ["--steps", "20", "--checkpoint-every", "1", "--eval-every", "1", "--set", "optim.lr=1e30"]
    assert _train(fake_fmnist, run, *argv) == 3
    err = capsys.readouterr().err.strip()
    m = re.search(r"training diverged at step (\d+) .* holds step (\d+), the last finite state", err)
    assert m, err
    diverged, held = int(m.group(1)), int(m.group(2))
    assert held == diverged - 1 >= 1
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == held


def test_a_stop_request_writes_its_checkpoint_after_the_write_in_flight(
    fake_fmnist, tmp_path, monkeypatch, capsys, background_writes
):
    """A slow background write of the step-2 checkpoint, then a stop request at step 3: the run ends with the
    step-3 checkpoint complete (written after the step-2 one) and nothing temporary left."""
    import signal
    import time

    from improved_gan.training import lifecycle
    from improved_gan.training import trainer as trainer_module

    real_fsync = os.fsync

    def slow_fsync(fd):
        if ".last.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            time.sleep(0.3)
        return real_fsync(fd)

    original = trainer_module.Trainer.train_step

    def stop_at_3(self):
        out = original(self)
        if self.step == 3:
            lifecycle._stop.signum = signal.SIGTERM
        return out

    monkeypatch.setattr(os, "fsync", slow_fsync)
    monkeypatch.setattr(trainer_module.Trainer, "train_step", stop_at_3)
    run = tmp_path / "run"
    assert _train(fake_fmnist, run, "--steps", "8", "--checkpoint-every", "2", "--eval-every", "100") == 143
    assert "at step 3, checkpoint written" in capsys.readouterr().err
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == 3
    assert torch.load(run / "generator.pt", weights_only=True)["step"] == 3
    assert not list(run.rglob(".*.tmp"))


def test_the_cpu_writes_checkpoints_on_the_training_thread():
    cfg = get_preset("fmnist-ssl")

    class FakeTrainer:
        def __init__(self, device: str, cfg: Config):
            self.device, self.cfg = torch.device(device), cfg

    assert not schedule._background_writes(FakeTrainer("cpu", cfg))
    assert schedule._background_writes(FakeTrainer("cuda", cfg))
    assert not schedule._background_writes(
        FakeTrainer("cuda", override(cfg, ["train.async_checkpoints=false"]))
    )


# ------------------------------------------------------------------------------------------ the batch rule
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FM_SETS = [
    "data.batch_size=100",  # the global batch; 100 labels (10 per class)
    "model.init_batch=40",
    # the same computation on 1 and 2 processes: no per-example noise, no batch-coupled layer in G
    "model.input_noise=0",
    "model.hidden_noise=0",
    "model.generator_norm=none",
]
TOY_SETS = ["data.batch_size=64", "model.init_batch=64"]


def _recording(trainer: Trainer) -> dict[str, list[torch.Tensor]]:
    """Wrap the trainer's batch sources to record what they return, step after step (a labelled batch as the
    rows ``[x flattened, y]``)."""
    seen: dict[str, list[torch.Tensor]] = {"z": [], "real": [], "lab": []}
    z, real, lab = trainer._z, trainer._real_batch, trainer._labeled_batch

    def z_rec(n):
        seen["z"].append(z(n))
        return seen["z"][-1]

    def real_rec(batcher):
        seen["real"].append(real(batcher))
        return seen["real"][-1]

    def lab_rec():
        x, y = lab()
        seen["lab"].append(torch.cat([x.flatten(1), y.float()[:, None]], 1))
        return x, y

    trainer._z, trainer._real_batch, trainer._labeled_batch = z_rec, real_rec, lab_rec
    return seen


def _run_trainers(data_dir: str, dist: D_.DistInfo, steps: int) -> dict:
    from improved_gan.training.build import load_train_data

    out = {}
    for preset, sets in (("fmnist-ssl", FM_SETS), ("ring8-gan", TOY_SETS)):
        cfg = override(get_preset(preset), sets)
        data, _ = load_train_data(cfg, data_dir=data_dir, device="cpu")
        t = Trainer(cfg, data, dist=dist)
        seen = _recording(t)
        for _ in range(steps):
            t.train_step()
        params = torch.cat([p.detach().reshape(-1) for p in [*t.G.parameters(), *t.D.parameters()]])
        out[preset] = {"batch_size": t.batch_size, "params": params, **seen}
    return out


def _rule_worker(rank: int, world: int, port: int, data_dir: str, steps: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )  # fmt: skip
    torch.set_num_threads(1)
    info = D_.init_from_env("cpu")
    torch.save(_run_trainers(data_dir, info, steps), f"{out}/{rank}.pt")
    D_.shutdown(info)


def test_two_gloo_processes_train_the_global_batch_of_one(fake_fmnist, tmp_path):
    """2 processes with data.batch_size=100 take 50 examples each of the very batches (labelled, unlabelled,
    generated z, toy points) one process takes with data.batch_size=100, and (without per-example noise or
    batch-coupled layers) end with the parameters of the one process."""
    steps = 3
    mp.spawn(
        _rule_worker, args=(2, _free_port(), str(fake_fmnist), steps, str(tmp_path)), nprocs=2, join=True
    )
    ranks = [torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in (0, 1)]
    single = _run_trainers(str(fake_fmnist), D_.DistInfo(), steps)
    for preset, keys in (("fmnist-ssl", ("z", "real", "lab")), ("ring8-gan", ("z", "real"))):
        one = single[preset]
        assert one["batch_size"] == 2 * ranks[0][preset]["batch_size"] == 2 * ranks[1][preset]["batch_size"]
        for key in keys:
            assert len(one[key]) == len(ranks[0][preset][key]) > 0
            for i, whole in enumerate(one[key]):
                parts = [r[preset][key][i] for r in ranks]
                assert parts[0].shape[0] == whole.shape[0] // 2
                assert torch.equal(torch.cat(parts), whole), (preset, key, i)
    # every labelled example once per step: 100 labels, a global batch of 100, split over 2 processes
    labels = single["fmnist-ssl"]["lab"]
    assert all(len({tuple(row.tolist()) for row in step}) == 100 for step in labels)
    p1, p2 = single["fmnist-ssl"]["params"], ranks[0]["fmnist-ssl"]["params"]
    assert torch.equal(ranks[0]["fmnist-ssl"]["params"], ranks[1]["fmnist-ssl"]["params"])
    torch.testing.assert_close(p2, p1, rtol=1e-4, atol=1e-5)


def test_a_global_batch_that_does_not_divide_is_one_error_line(fake_fmnist, tmp_path):
    cmd = torchrun_cmd(
        "-m", "improved_gan", "train", "fmnist-ssl", "--data-dir", str(fake_fmnist), "--out",
        str(tmp_path / "run"), "--steps", "2", "--quiet", "--set", "data.batch_size=15",
    )  # fmt: skip
    p = subprocess.run(cmd, cwd=tmp_path, env=one_thread_env(), capture_output=True, text=True, timeout=600)
    assert p.returncode != 0
    lines = [x for x in p.stderr.splitlines() if x.startswith("error:")]
    assert lines == [
        "error: data.batch_size=15 is the global batch and must divide evenly over the 2 processes "
        "(world size 2); use e.g. data.batch_size=14 or 16, or another number of processes"
    ], p.stderr[-3000:]
    assert "exitcode  : 2" in p.stderr  # torchrun's report of the failed ranks: the status of a bad option


def test_resume_refuses_a_run_started_with_a_per_process_batch(fake_fmnist, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(fake_fmnist, run, "--steps", "2", "--checkpoint-every", "1", "--eval-every", "100") == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["run"]["global_batch_size"] == 20 and cfg["run"]["batch_size_per_rank"] == 20
    # what a 2-process run wrote when data.batch_size was the batch of each process
    cfg["run"].update(world_size=2, global_batch_size=40)
    (run / "config.json").write_text(json.dumps(cfg))
    (run / "summary.json").unlink()
    capsys.readouterr()
    assert main(["resume", str(run), "--data-dir", str(fake_fmnist), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"error: {run}: this run was started with data.batch_size=20 per process")
    assert "--set data.batch_size=40" in err
