"""Multi-process training with ``torchrun`` (``torch.distributed``; gloo on CPU, NCCL on CUDA).

Design: every rank holds a full copy of both networks. After each backward pass, :func:`average_gradients`
all-reduces the gradients (mean over ranks) so every optimizer takes the same step and the parameters, the
evaluation EMA and the historical averages stay identical on every rank (they are updated from identical
parameters). We do this explicitly rather than through ``DistributedDataParallel`` because one GAN step runs the
discriminator several times (labelled, unlabelled, generated and feature-matching passes, some without gradient),
which DDP's one-forward-one-backward hooks do not describe.

How each technique keeps its meaning:

- Losses that are means over a rank's batch (the K+1 losses, BCE): the mean of the per-rank gradients equals the
  gradient of the loss over the global batch, because every rank has the same per-rank batch size.
- Feature matching compares GLOBAL batch means: :func:`global_mean` all-reduces the per-rank means (the real side
  without gradient, the generated side with the local contribution kept differentiable, see its docstring).
- Minibatch discrimination sees each rank's local batch (its per-rank batch is the effective batch of that layer,
  as in the paper's multi-GPU ImageNet code).
- Virtual batch norm: the reference z is drawn from the run seed, identical on every rank.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_from_env(device: str) -> DistInfo:
    """Initialise the process group from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK), if present."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        restart = os.environ.get("TORCHELASTIC_RESTART_COUNT")
        if restart is None:
            dist.init_process_group(backend=backend)
        else:
            # torchrun shares one TCP store across the rounds of an elastic restart, so the keys through which
            # gloo/NCCL exchange addresses would still hold the dead attempt's values: a restarted rank could
            # read a killed peer's address (connection refused). One key prefix per attempt avoids that.
            from torch.distributed.rendezvous import rendezvous

            store, _, _ = next(rendezvous("env://", rank, world))
            store = dist.PrefixStore(f"improved-gan/attempt-{restart}", store)
            dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank)


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def average_gradients(module: nn.Module, info: DistInfo) -> None:
    """All-reduce (mean) the gradients of ``module`` in one flat buffer."""
    if not info.enabled:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def broadcast_module(module: nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not info.enabled:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        with torch.no_grad():
            dist.broadcast(t.data, src=0)


def average_buffers(module: nn.Module, info: DistInfo) -> None:
    """Average floating-point buffers (batch-norm running statistics) over ranks so they stay identical: one
    all-reduce of one flat buffer per dtype (one in practice), not one per buffer."""
    if not info.enabled:
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for b in module.buffers():
        if b.is_floating_point():
            by_dtype.setdefault(b.dtype, []).append(b)
    for bufs in by_dtype.values():
        flat = torch.cat([b.detach().reshape(-1) for b in bufs])
        dist.all_reduce(flat)
        flat /= info.world_size
        offset = 0
        with torch.no_grad():
            for b in bufs:
                b.copy_(flat[offset : offset + b.numel()].view_as(b))
                offset += b.numel()


def global_mean(local_mean: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean over ranks of equal-sized per-rank batch means, differentiable in THIS rank's contribution.

    Returns ``(sum_k m_k) / W`` whose value is the global batch mean and whose gradient flows into ``local_mean``
    only (the other ranks' means enter as constants). A loss ``L(global mean)`` computed this way on every rank,
    multiplied by ``W`` and followed by :func:`average_gradients`, has exactly the gradient of ``L`` over the
    global batch: the mean over ranks of ``W * dL/dm_k * dm_k/dtheta`` is ``sum_k dL/dm_k dm_k/dtheta``.
    """
    if not info.enabled:
        return local_mean
    total = local_mean.detach().clone()
    dist.all_reduce(total)
    return (total - local_mean.detach() + local_mean) / info.world_size


def all_gather_tensor(t: torch.Tensor, info: DistInfo) -> list[torch.Tensor]:
    """Gather a same-shaped tensor from every rank (e.g. RNG states for a checkpoint)."""
    if not info.enabled:
        return [t]
    out = [torch.empty_like(t) for _ in range(info.world_size)]
    dist.all_gather(out, t.contiguous())
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


_HOST_GROUP: list = []  # [(default group, a gloo group over the same ranks)], made once per process group


def _host_group():
    """A process group for host integers: the default group under gloo; under NCCL a gloo group over the same
    ranks (made collectively on first use), so that a host value never goes through the GPU."""
    world = dist.group.WORLD
    if dist.get_backend() == "gloo":
        return world
    if not _HOST_GROUP or _HOST_GROUP[0][0] is not world:
        _HOST_GROUP[:] = [(world, dist.new_group(backend="gloo"))]
    return _HOST_GROUP[0][1]


def all_max(values: list[int], info: DistInfo) -> list[int]:
    """Element-wise maximum over ranks of a few integers, in ONE collective (e.g. the per-step stop decision:
    time budget over, a stop signal's number, a divergence, the clock; README, "Long runs on clusters").

    The values are host integers and stay on the host: under NCCL they are all-reduced over a gloo group of the
    same ranks, so the call neither copies to the GPU nor waits for the GPU's queued work (the step's kernels
    keep running while the ranks agree)."""
    if not info.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=_host_group())
    return [int(v) for v in t.tolist()]


def rank0_decides(fn, info: DistInfo):
    """Run ``fn()`` on rank 0 only and share its outcome: its return value on every rank, or, when it raised a
    :class:`~improved_gan.errors.UserError`, the same error on every rank (rank 0's own; on the other ranks a
    copy marked ``quiet``, so the command line prints it once). Every rank then exits cleanly instead of waiting
    for rank 0 until torchrun kills it."""
    from improved_gan.errors import UserError

    if not info.enabled:
        return fn()
    outcome: list = [None]
    error = None
    if info.is_main:
        try:
            outcome = [("ok", fn())]
        except UserError as exc:
            error = exc
            outcome = [("error", type(exc).__name__, str(exc), exc.exit_code)]
    dist.broadcast_object_list(outcome, src=0)
    kind = outcome[0]
    if kind[0] == "ok":
        return kind[1]
    dist.barrier()  # leave together: torchrun kills the ranks still running once one exits with an error
    if error is not None:
        raise error
    copy = UserError(kind[2])
    copy.exit_code, copy.quiet = kind[3], True
    raise copy
