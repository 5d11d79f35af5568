"""The multi-process batch rule (training/batching.py): the global batch is the preset's, split over ranks."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from improved_gan.data import EpochBatcher
from improved_gan.errors import ConfigError
from improved_gan.training.batching import global_batch_examples, per_rank_batch, rank_slice


@pytest.mark.parametrize(
    ("global_batch", "world", "expected"), [(100, 1, 100), (100, 2, 50), (100, 4, 25), (64, 8, 8)]
)
def test_per_rank_batch_divides(global_batch, world, expected):
    assert per_rank_batch(global_batch, world) == expected


def test_impossible_split_is_one_line_naming_the_option_and_world_size():
    with pytest.raises(ConfigError) as info:
        per_rank_batch(100, 8)
    msg = str(info.value)
    assert "\n" not in msg and "data.batch_size=100" in msg and "world size 8" in msg
    assert "96 or 104" in msg  # the nearest multiples of 8
    with pytest.raises(ConfigError, match=r"data.batch_size=3 .*\(world size 4\).*batch_size=4,"):
        per_rank_batch(3, 4)
    with pytest.raises(ConfigError, match="model.init_batch=0"):
        per_rank_batch(0, 1, option="model.init_batch")
    with pytest.raises(ConfigError, match="world size 0"):
        per_rank_batch(100, 0)


def test_rank_slices_tile_the_global_batch():
    slices = [rank_slice(100, 4, r) for r in range(4)]
    covered = [i for s in slices for i in range(100)[s]]
    assert covered == list(range(100))
    with pytest.raises(ValueError, match="rank"):
        rank_slice(100, 4, 4)


def test_examples_per_run_do_not_depend_on_the_world_size():
    # cifar10-ssl: 600,000 steps of a global batch of 100 over 50,000 images = 1,200 epochs, for any W
    assert global_batch_examples(100, 600_000) / 50_000 == 1200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, n: int, global_batch: int, steps: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    b = per_rank_batch(global_batch, world)
    batcher = EpochBatcher(n, b, seed=7, rank=rank, world_size=world)
    # the per-rank mean gradient of a mean loss, averaged over ranks, as the trainer's average_gradients does
    w = torch.zeros(3, requires_grad=True)
    x = torch.arange(n * 3, dtype=torch.float32).reshape(n, 3) / n
    rows = []
    grads = []
    for _ in range(steps):
        idx = batcher.next_indices()
        gathered = [torch.empty_like(idx) for _ in range(world)]
        dist.all_gather(gathered, idx)
        rows.append(torch.cat(gathered))
        w.grad = None
        ((x[idx] @ w - 1.0) ** 2).mean().backward()
        g = w.grad.clone()
        dist.all_reduce(g)
        grads.append(g / world)
    if rank == 0:
        torch.save((torch.stack(rows), torch.stack(grads)), f"{out}/r0.pt")
    dist.destroy_process_group()


def test_two_gloo_ranks_draw_exactly_the_single_process_global_batches(tmp_path):
    n, global_batch, steps = 100, 100, 3  # 100 labels, global batch 100: every label once per step
    mp.spawn(_worker, args=(2, _free_port(), n, global_batch, steps, str(tmp_path)), nprocs=2, join=True)
    rows, grads = torch.load(tmp_path / "r0.pt", weights_only=True)
    single = EpochBatcher(n, global_batch, seed=7)
    x = torch.arange(n * 3, dtype=torch.float32).reshape(n, 3) / n
    for step in range(steps):
        idx = single.next_indices()
        assert torch.equal(rows[step], idx)
        assert sorted(rows[step].tolist()) == list(range(n))  # no labelled example repeats within a step
        # gradient of the global-batch mean loss at w = 0, in closed form: d/dw mean((x w - 1)^2) = -2 mean(x)
        torch.testing.assert_close(grads[step], -2.0 * x[idx].mean(0))
