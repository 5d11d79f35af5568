"""Choosing the labeled examples and drawing deterministic, resumable, shardable minibatches of indices.

Semi-supervised recipes (paper Section 5; Section 6: 100 labels on MNIST, 4000 on CIFAR-10, 1000 on SVHN) keep
``per_class`` labels of each class. :func:`~improved_gan.data.labeled_subset` picks them as the reference code does: a
permutation from ``numpy.random.RandomState(seed).permutation(N)`` (the reference's ``data_rng`` with
``--seed_data``), then the first ``per_class`` examples of each class in that order, returned class by class
(all of class 0, then 1, ...). With the same training-set order and seed it selects the same examples as the
reference code.

:class:`~improved_gan.data.EpochBatcher` replaces the reference's per-epoch ``rng.permutation`` slicing with a stream that can be
resumed and split across ranks:

- epoch ``e`` visits ``torch.randperm(N, generator=torch.Generator().manual_seed(epoch_seed(seed, e)))``,
  where :func:`~improved_gan.data.epoch_seed` mixes (seed, e) with SplitMix64 so that nearby seeds and epochs give unrelated
  permutations (``seed + e``, as torch's DistributedSampler does, would make stream ``s`` at epoch 1 equal
  stream ``s + 1`` at epoch 0);
- each step takes the next global batch of ``G = batch_size * world_size`` indices; rank ``r`` keeps
  ``[r * batch_size, (r + 1) * batch_size)``, so ranks see disjoint shards of one global batch;
- ``drop_last=True`` and ``G <= N``: when fewer than G indices remain in the epoch they are skipped and the
  next epoch starts (like the reference, which drops the last partial batch);
- ``drop_last=False`` or ``G > N`` (e.g. 100 labels and a batch of 100 per rank on 2 ranks): successive
  epochs' permutations are concatenated into one stream, so every batch is full and each epoch is used exactly
  once.

Work per step is slicing tensors and one ``randperm`` per new epoch; no per-example Python.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

__all__ = ["EpochBatcher", "epoch_seed", "labeled_subset"]

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """One SplitMix64 output for state ``x`` (Steele, Lea & Flood, 2014)."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def epoch_seed(seed: int, epoch: int) -> int:
    """The generator seed of ``epoch`` for a stream seeded ``seed``: a 63-bit SplitMix64 mix of both."""
    return _splitmix64(_splitmix64(seed & _MASK64) ^ (epoch & _MASK64)) >> 1


def labeled_subset(labels, per_class: int, seed: int, *, num_classes: int | None = None) -> torch.Tensor:
    """Indices ``(num_classes * per_class,)`` int64 of a class-balanced labeled set, grouped by class.

    Args:
        labels: ``(N,)`` integer labels (tensor or array).
        per_class: examples kept per class.
        seed: seed of the ``numpy.random.RandomState`` permutation (the reference's ``--seed_data``).
        num_classes: classes 0..K-1 to draw from; default ``max(labels) + 1``.
    """
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if y.ndim != 1 or y.size == 0 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be a non-empty 1-D integer tensor, got {y.dtype} {y.shape}")
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    k = int(y.max()) + 1 if num_classes is None else num_classes
    perm = np.random.RandomState(seed).permutation(y.size)  # (N,)
    y_perm = y[perm]  # (N,)
    chosen = []
    for c in range(k):
        positions = np.flatnonzero(y_perm == c)[:per_class]  # (<= per_class,)
        if positions.size < per_class:
            raise ValueError(f"class {c} has {positions.size} examples, fewer than per_class={per_class}")
        chosen.append(perm[positions])
    return torch.from_numpy(np.concatenate(chosen).astype(np.int64))  # (K * per_class,)


class EpochBatcher:
    """Deterministic minibatches of indices into ``range(num_examples)``; see the module doc for the order."""

    def __init__(
        self,
        num_examples: int,
        batch_size: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ) -> None:
        if num_examples < 1 or batch_size < 1 or world_size < 1:
            raise ValueError(
                "num_examples, batch_size and world_size must be >= 1, "
                f"got {num_examples}, {batch_size}, {world_size}"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.num_examples = int(num_examples)
        self.batch_size = int(batch_size)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self._epoch = 0
        self._position = 0  # next unused index of the current epoch's permutation
        self._cache: tuple[int, torch.Tensor] | None = None

    @property
    def global_batch_size(self) -> int:
        """``batch_size * world_size``: the examples of one step over all processes."""
        return self.batch_size * self.world_size

    @property
    def epoch(self) -> int:
        """The epoch the next batch starts in (before any roll-over)."""
        return self._epoch

    @property
    def position(self) -> int:
        """The next unused index into the current epoch's permutation (with ``epoch``, the state a checkpoint keeps)."""
        return self._position

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._cache is None or self._cache[0] != epoch:
            g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
            self._cache = (epoch, torch.randperm(self.num_examples, generator=g))  # (N,)
        return self._cache[1]

    def next_indices(self) -> torch.Tensor:
        """This rank's next ``(batch_size,)`` int64 indices."""
        n, g = self.num_examples, self.global_batch_size
        if self.drop_last and g <= n:
            if n - self._position < g:
                self._epoch, self._position = self._epoch + 1, 0
            batch = self._permutation(self._epoch)[self._position : self._position + g]  # (G,)
            self._position += g
        else:
            parts, need = [], g
            while need:
                if self._position == n:
                    self._epoch, self._position = self._epoch + 1, 0
                take = min(need, n - self._position)
                parts.append(self._permutation(self._epoch)[self._position : self._position + take])
                self._position += take
                need -= take
            batch = torch.cat(parts)  # (G,)
        lo = self.rank * self.batch_size
        return batch[lo : lo + self.batch_size].clone()  # (B,)

    def state_dict(self) -> dict[str, int]:
        """Plain ints; ``torch.save`` / ``torch.load(weights_only=True)`` round-trips them."""
        return {
            "seed": self.seed,
            "epoch": self._epoch,
            "position": self._position,
            "num_examples": self.num_examples,
        }

    def load_state_dict(self, state: Mapping[str, int | torch.Tensor]) -> None:
        """Continue exactly where the saved batcher stopped (batch and world size may differ)."""
        try:
            values = {k: int(state[k]) for k in ("seed", "epoch", "position", "num_examples")}
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(
                f"invalid EpochBatcher state (expected ints seed, epoch, position, num_examples): {exc}"
            ) from None
        if values["num_examples"] != self.num_examples:
            raise ValueError(
                f"EpochBatcher state is for {values['num_examples']} examples, "
                f"this batcher has {self.num_examples}"
            )
        if values["epoch"] < 0 or not 0 <= values["position"] <= self.num_examples:
            raise ValueError(
                f"invalid EpochBatcher state: epoch {values['epoch']}, position {values['position']}"
            )
        self.seed, self._epoch, self._position = values["seed"], values["epoch"], values["position"]
        self._cache = None
