"""What a batch means on several processes: the rule, as pure functions (docs, "Multi-process training").

The rule: ``data.batch_size`` is the GLOBAL batch of one step, the preset's (the paper's 100), whatever the
number of processes. Each of the ``W`` ranks takes ``data.batch_size / W`` examples of every batch (labelled,
unlabelled, generated), a disjoint slice of one global batch, and the run is refused with a one-line error where
that division is impossible. Everything counted in steps keeps its meaning: ``train.steps``, the evaluation and
checkpoint cadences, the learning rate and its decay are the preset's, so a run on 8 GPUs makes the same
1,200 epochs of CIFAR-10 as a run on one, and with 100 labels and a global batch of 100 every labelled example
appears exactly once per step, whatever ``W``.

What stays per rank: a layer whose output couples the examples of a batch (minibatch discrimination, paper §3.2;
batch norm of the generator) sees the rank's ``batch_size / W`` examples, so such presets are only the same
computation for ``W = 1`` (feature matching is not affected: it compares global batch means).
"""

from __future__ import annotations

from improved_gan.errors import ConfigError

__all__ = ["global_batch_examples", "per_rank_batch", "rank_slice"]


def per_rank_batch(global_batch: int, world_size: int, *, option: str = "data.batch_size") -> int:
    """The examples each of ``world_size`` ranks takes from a global batch of ``global_batch``.

    Raises :class:`~improved_gan.errors.ConfigError` (one line naming ``option`` and the world size) when
    ``global_batch`` is not a positive multiple of ``world_size``.
    """
    if isinstance(global_batch, bool) or not isinstance(global_batch, int) or global_batch < 1:
        raise ConfigError(f"{option}={global_batch!r}: expected a positive integer (the global batch)")
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ConfigError(f"world size {world_size!r}: expected a positive integer number of processes")
    if global_batch % world_size:
        lower = global_batch - global_batch % world_size
        hint = f"{lower} or {lower + world_size}" if lower else f"{world_size}"
        raise ConfigError(
            f"{option}={global_batch} is the global batch and must divide evenly over the {world_size} "
            f"processes (world size {world_size}); use e.g. {option}={hint}, or another number of processes"
        )
    return global_batch // world_size


def rank_slice(global_batch: int, world_size: int, rank: int) -> slice:
    """Rank ``rank``'s part ``[rank * b, (rank + 1) * b)`` of a global batch, ``b = per_rank_batch(...)``."""
    b = per_rank_batch(global_batch, world_size)
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank!r}")
    return slice(rank * b, (rank + 1) * b)


def global_batch_examples(global_batch: int, steps: int) -> int:
    """Examples a run of ``steps`` steps draws from each stream (independent of the world size under this rule);
    the epochs of a set of ``N`` examples are this over ``N``."""
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    return global_batch * steps
