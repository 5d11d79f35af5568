"""Multi-process training (issue 7): 2 gloo processes on CPU, as ``torchrun`` starts them."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from data_files import write_idx_dataset
from improved_gan.losses import feature_matching_loss
from improved_gan.training import distributed as D_
from run_checks import one_thread_env, torchrun_cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fm_worker(rank: int, world: int, port: int, real: torch.Tensor, fake: torch.Tensor, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    info = D_.DistInfo(rank=rank, world_size=world)
    n = real.shape[0] // world
    fake_local = fake[rank * n : (rank + 1) * n].clone().requires_grad_(True)
    real_mean = D_.global_mean(real[rank * n : (rank + 1) * n].mean(0), info)
    fake_mean = D_.global_mean(fake_local.mean(0), info)
    loss = feature_matching_loss(real_mean[None], fake_mean[None]) * world
    loss.backward()
    torch.save(
        (real_mean.detach(), fake_mean.detach(), loss.detach() / world, fake_local.grad), f"{out}/{rank}.pt"
    )
    dist.destroy_process_group()


def _spawn(worker, *args, tmp_path) -> dict[int, tuple]:
    """Run ``worker(rank, 2, port, *args, out_dir)`` in 2 processes; return what each rank saved."""
    mp.spawn(worker, args=(2, _free_port(), *args, str(tmp_path)), nprocs=2, join=True)
    return {r: torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in (0, 1)}


def test_all_reduced_feature_matching_equals_single_process_statistics(tmp_path):
    gen = torch.Generator().manual_seed(0)
    real, fake = torch.randn(8, 5, generator=gen), torch.randn(8, 5, generator=gen)
    got = _spawn(_fm_worker, real, fake, tmp_path=tmp_path)
    # single process, the concatenated batch
    fake_all = fake.clone().requires_grad_(True)
    loss = feature_matching_loss(real, fake_all)
    loss.backward()
    for rank in (0, 1):
        real_mean, fake_mean, loss_r, grad_local = got[rank]
        torch.testing.assert_close(real_mean, real.mean(0))
        torch.testing.assert_close(fake_mean, fake.mean(0))
        torch.testing.assert_close(loss_r, loss.detach())
        # each rank's gradient (world x local loss, before averaging) is the global gradient of its own examples
        # times world; average_gradients divides by world, so parameters receive exactly the global gradient.
        torch.testing.assert_close(grad_local / 2, fake_all.grad[rank * 4 : (rank + 1) * 4])


def _torchrun(*args: str, cwd) -> subprocess.CompletedProcess:
    cmd = torchrun_cmd("-m", "improved_gan", *args)
    return subprocess.run(cmd, cwd=cwd, env=one_thread_env(), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def fake_fmnist(tmp_path_factory):
    d = tmp_path_factory.mktemp("fmnist")
    write_idx_dataset(d, n_train=200, n_test=50, seed=5)
    return d


def test_two_process_run_is_complete_written_once_and_resumable(fake_fmnist, tmp_path):
    common = [
        "--data-dir",
        str(fake_fmnist),
        "--set",
        "data.batch_size=10",
        "--set",
        "model.init_batch=40",
        "--quiet",
        "--eval-every",
        "2",
        "--checkpoint-every",
        "2",
        "--set",
        "train.keep_every=2",
    ]
    run = tmp_path / "run"
    p = _torchrun("train", "fmnist-ssl", "--out", str(run), "--steps", "4", *common, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    cfg = json.loads((run / "config.json").read_text())
    # data.batch_size is the global batch: 5 examples per process
    assert cfg["run"]["world_size"] == 2 and cfg["run"]["global_batch_size"] == 10
    assert cfg["run"]["batch_size_per_rank"] == 5
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]  # written once, by rank 0
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == 4 and len(ckpt["rng"]["torch"]) == 2
    # every rank draws the global batch's z (and keeps its slice); the noise layers' streams are per rank
    assert torch.equal(ckpt["rng"]["z"][0], ckpt["rng"]["z"][1])
    assert not torch.equal(ckpt["rng"]["torch"][0], ckpt["rng"]["torch"][1])

    # resume under 2 processes: roll a copy back to its kept step-2 checkpoint, resume, compare final states
    part = tmp_path / "part"
    shutil.copytree(run, part)
    shutil.copyfile(part / "checkpoints" / "step_0000002.pt", part / "checkpoints" / "last.pt")
    (part / "summary.json").unlink()
    p = _torchrun("resume", str(part), "--data-dir", str(fake_fmnist), "--quiet", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    a = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(part / "checkpoints" / "last.pt", weights_only=True)
    for key in ("G", "D", "ema", "opt_d", "opt_g"):
        _assert_same(a[key], b[key])
    assert [json.loads(x)["step"] for x in (part / "metrics.jsonl").read_text().splitlines()] == [2, 4]


def _assert_same(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert a == b


def _params_worker(rank: int, world: int, port: int, data_dir: str, out) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    from improved_gan.training.config import override
    from improved_gan.training.presets import get_preset
    from improved_gan.training.run import load_train_data
    from improved_gan.training.trainer import Trainer

    info = D_.init_from_env("cpu")
    cfg = override(get_preset("fmnist-ssl"), ["data.batch_size=10", "model.init_batch=40"])
    data, _ = load_train_data(cfg, data_dir=data_dir, device="cpu")
    t = Trainer(cfg, data, dist=info)
    for _ in range(3):
        t.train_step()
    flat = torch.cat([p.detach().reshape(-1) for p in list(t.G.parameters()) + list(t.D.parameters())])
    ema = torch.cat([b.reshape(-1).float() for b in t.ema.buffers()])
    assert t.batch_size == 5  # data.batch_size=10 is the global batch
    torch.save((flat, ema, t.unl_batcher.next_indices()), f"{out}/{rank}.pt")
    D_.shutdown(info)


def test_parameters_and_ema_identical_on_both_ranks_and_shards_disjoint(fake_fmnist, tmp_path):
    got = _spawn(_params_worker, str(fake_fmnist), tmp_path=tmp_path)
    assert torch.equal(got[0][0], got[1][0])
    assert torch.equal(got[0][1], got[1][1])
    assert not set(got[0][2].tolist()) & set(got[1][2].tolist())
