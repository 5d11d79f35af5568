"""Exponential moving average of a network's parameters, used to evaluate the discriminator (paper §5).

The reference code keeps ``avg <- avg + (1 - decay) (p - avg)`` with ``decay = 0.9999``, starting from ZERO, and
evaluates with ``avg``. Early in training that average is shrunk towards 0 (after 600 steps it holds 6% of the
parameters' scale) and, once corrected, it is a nearly uniform average over every step so far, early untrained
steps included: evaluations before ~10^4 steps mean little.

We correct this with a warm-up of the decay (as TensorFlow's ``ExponentialMovingAverage(num_updates=t)`` does):
at update ``t`` (1-based) the decay is ``min(decay, (1 + t) / (10 + t))``, and the average starts at the initial
parameters rather than at zero. Early averages then follow the parameters closely (no zero-initialisation bias), the effective averaging window grows with training (about ``t / 9`` steps) and
reaches the reference's ``1 / (1 - decay)`` = 10,000 steps after ~90,000 updates, so long runs average exactly as
the reference code does. Buffers (batch-norm statistics, VBN references) are copied, not averaged.

The update counter lives on the CPU (a Python int, mirrored into the ``count`` buffer of the state dict without
reading it back), so an update makes no host synchronisation on a GPU; the averages are updated with one
``torch._foreach_lerp_`` over all parameters.
"""

from __future__ import annotations

import torch
from torch import nn


def ema_decay_at(t: int, decay: float) -> float:
    """The decay used by update number ``t`` (1-based): ``min(decay, (1 + t) / (10 + t))``."""
    return min(decay, (1.0 + t) / (10.0 + t))


class EMA(nn.Module):
    """EMA of ``module``'s parameters with a warmed-up decay. ``update()`` after each optimizer step;
    ``copy_to(target)`` loads the averages into a network of the same structure."""

    def __init__(self, module: nn.Module, *, decay: float):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        for i, p in enumerate(module.parameters()):
            self.register_buffer(f"avg{i}", p.detach().float().clone())
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))
        self._count = 0  # the host's copy of `count` (the decay needs it every update)
        self._module = [module]  # not a submodule: its parameters stay out of this state_dict

    @property
    def num_updates(self) -> int:
        """Updates so far (``t`` of :func:`ema_decay_at`)."""
        return self._count

    @torch.no_grad()
    def update(self) -> None:
        """One update ``avg <- avg + (1 - d_t) (p - avg)`` of every average, ``d_t = ema_decay_at(t, decay)``."""
        self._count += 1
        self.count.fill_(self._count)  # a kernel argument on a GPU: no copy, no synchronisation
        d = ema_decay_at(self._count, self.decay)
        params = [p.detach().float() for p in self._module[0].parameters()]
        avgs = [self._buffers[f"avg{i}"] for i in range(len(params))]
        torch._foreach_lerp_(avgs, params, 1.0 - d)  # avg += (1 - d) (p - avg)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        key = prefix + "count"
        if key in state_dict:
            self._count = int(state_dict[key])  # once, at load time

    @torch.no_grad()
    def copy_to(self, target: nn.Module) -> None:
        source = self._module[0]
        for i, p_dst in enumerate(target.parameters()):
            p_dst.copy_(getattr(self, f"avg{i}"))
        for b_src, b_dst in zip(source.buffers(), target.buffers()):
            b_dst.copy_(b_src)
