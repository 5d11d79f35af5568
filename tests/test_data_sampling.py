"""labeled_subset (the reference's seeded selection) and EpochBatcher (order, sharding, resuming)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from improved_gan.data import EpochBatcher, epoch_seed, labeled_subset
from improved_gan.data.sampling import _splitmix64

# ---------------------------------------------------------------- labeled_subset


def _reference_selection(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """The reference code's loop: permute with RandomState(seed), keep trainy==j's first `count`, j = 0..9."""
    inds = np.random.RandomState(seed).permutation(labels.shape[0])
    permuted = labels[inds]
    return np.concatenate([inds[permuted == j][:count] for j in range(int(labels.max()) + 1)])


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_labeled_subset_matches_reference_selection(seed):
    labels = np.random.default_rng(seed).integers(0, 10, size=500)
    chosen = labeled_subset(torch.from_numpy(labels), 10, seed)
    assert chosen.dtype == torch.int64 and chosen.shape == (100,)
    np.testing.assert_array_equal(chosen.numpy(), _reference_selection(labels, 10, seed))


def test_labeled_subset_is_balanced_grouped_and_unique():
    labels = torch.from_numpy(np.random.default_rng(0).integers(0, 10, size=300))
    chosen = labeled_subset(labels, 4, seed=3)
    assert torch.equal(labels[chosen], torch.arange(10).repeat_interleave(4))
    assert chosen.unique().numel() == 40


def test_labeled_subset_loop_oracle():
    # Per class, the first examples met when walking the permutation in order.
    labels = np.array([2, 0, 1, 1, 0, 2, 2, 0, 1, 0, 2, 1])
    perm = np.random.RandomState(5).permutation(len(labels))
    expected = {c: [] for c in range(3)}
    for i in perm:
        if len(expected[labels[i]]) < 2:
            expected[labels[i]].append(int(i))
    chosen = labeled_subset(labels, 2, 5)
    assert chosen.tolist() == expected[0] + expected[1] + expected[2]


def test_labeled_subset_errors():
    with pytest.raises(ValueError, match="class 1"):
        labeled_subset(torch.tensor([0, 0, 1, 2, 2]), 2, seed=0)
    with pytest.raises(ValueError, match="class 3"):
        labeled_subset(torch.tensor([0, 1, 2]), 1, seed=0, num_classes=4)
    with pytest.raises(ValueError):
        labeled_subset(torch.tensor([0.5, 1.0]), 1, seed=0)
    with pytest.raises(ValueError):
        labeled_subset(torch.tensor([0, 1]), 0, seed=0)


# ---------------------------------------------------------------- EpochBatcher


def test_splitmix64_known_outputs():
    # The first outputs of SplitMix64 seeded with 0 (Vigna's reference implementation's test vector).
    golden = 0x9E3779B97F4A7C15
    outputs = [_splitmix64((k * golden) % 2**64) for k in range(4)]
    assert outputs == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F, 0xF88BB8A8724C81EC]
    assert epoch_seed(3, 5) == _splitmix64(_splitmix64(3) ^ 5) >> 1
    assert 0 <= epoch_seed(-1, 2**70) < 2**63


def _perm(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(seed, epoch)))


def test_epochs_follow_their_permutations_and_drop_the_tail():
    n, b, seed = 10, 3, 11
    batcher = EpochBatcher(n, b, seed=seed)
    for step in range(9):  # 3 full batches per epoch; the 10th index of each epoch is skipped
        e, s = divmod(step, 3)
        batch = batcher.next_indices()
        assert batch.dtype == torch.int64 and batch.shape == (3,)
        assert torch.equal(batch, _perm(n, seed, e)[3 * s : 3 * s + 3])


def test_each_epoch_visits_every_index_once():
    batcher = EpochBatcher(12, 4, seed=0)
    for _ in range(3):
        epoch = torch.cat([batcher.next_indices() for _ in range(3)])
        assert torch.equal(epoch.sort().values, torch.arange(12))


def test_nearby_seeds_and_epochs_differ():
    perms = {tuple(_perm(50, s, e).tolist()) for s in range(4) for e in range(4)}
    assert len(perms) == 16


@pytest.mark.parametrize(("n", "b", "w"), [(20, 3, 2), (10, 5, 2), (7, 4, 3)])
def test_ranks_are_disjoint_shards_of_the_global_batch(n, b, w):
    ranks = [EpochBatcher(n, b, seed=4, rank=r, world_size=w) for r in range(w)]
    single = EpochBatcher(n, b * w, seed=4)
    for _ in range(9):
        shards = [r.next_indices() for r in ranks]
        assert torch.equal(torch.cat(shards), single.next_indices())
        if b * w <= n:
            assert torch.cat(shards).unique().numel() == b * w


def _stream(n: int, seed: int, length: int) -> torch.Tensor:
    """Successive epochs' permutations, concatenated."""
    return torch.cat([_perm(n, seed, e) for e in range(length // n + 1)])[:length]


@pytest.mark.parametrize(
    ("n", "b", "drop_last"), [(4, 10, True), (4, 10, False), (10, 3, False), (5, 5, True)]
)
def test_stream_concatenates_epochs(n, b, drop_last):
    batcher = EpochBatcher(n, b, seed=9, drop_last=drop_last)
    got = torch.cat([batcher.next_indices() for _ in range(6)])
    assert torch.equal(got, _stream(n, 9, 6 * b))


@pytest.mark.parametrize(("n", "b", "w", "drop_last"), [(10, 3, 1, True), (4, 3, 2, True), (10, 3, 2, False)])
def test_resume_continues_exactly(n, b, w, drop_last):
    kwargs = {"seed": 21, "world_size": w, "rank": w - 1, "drop_last": drop_last}
    uninterrupted = EpochBatcher(n, b, **kwargs)
    expected = [uninterrupted.next_indices() for _ in range(13)]
    first = EpochBatcher(n, b, **kwargs)
    head = [first.next_indices() for _ in range(5)]
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    resumed = EpochBatcher(n, b, **{**kwargs, "seed": 0})  # the seed comes from the state
    resumed.load_state_dict(state)
    tail = [resumed.next_indices() for _ in range(8)]
    for got, want in zip(head + tail, expected):
        assert torch.equal(got, want)
    assert set(state) == {"seed", "epoch", "position", "num_examples"}
    assert all(type(v) is int for v in state.values())


def test_state_accepts_tensors_and_checks_size():
    batcher = EpochBatcher(10, 2, seed=1)
    batcher.load_state_dict(
        {k: torch.tensor(v) for k, v in {"seed": 5, "epoch": 2, "position": 4}.items()} | {"num_examples": 10}
    )
    assert (batcher.seed, batcher.epoch, batcher.position) == (5, 2, 4)
    with pytest.raises(ValueError, match="12 examples"):
        batcher.load_state_dict({"seed": 5, "epoch": 2, "position": 4, "num_examples": 12})
    with pytest.raises(ValueError):
        batcher.load_state_dict({"seed": 5, "epoch": 2})
    with pytest.raises(ValueError):
        batcher.load_state_dict({"seed": 5, "epoch": 0, "position": 11, "num_examples": 10})


def test_invalid_arguments():
    for args, kwargs in [((0, 1), {}), ((5, 0), {}), ((5, 1), {"world_size": 0}), ((5, 1), {"rank": 1})]:
        with pytest.raises(ValueError):
            EpochBatcher(*args, seed=0, **kwargs)
