"""Exponential moving average of a network's parameters, used to evaluate the discriminator (SPEC §6).

The reference code keeps ``avg <- avg + (1 - decay) (p - avg)`` with ``decay = 0.9999``, starting from ZERO, and
evaluates with ``avg``: early in training that average is shrunk towards 0 by the factor ``1 - decay^t`` (after
600 steps it is 6% of the parameters). We keep the same recursion and divide by ``1 - decay^t`` when the average is
read (the bias correction of Adam, Kingma & Ba 2015, §3), so every evaluation is an unbiased weighted average of the
parameters seen so far. Buffers (e.g. batch-norm statistics, VBN references) are copied, not averaged.
"""

from __future__ import annotations

import torch
from torch import nn


class EMA(nn.Module):
    """Bias-corrected EMA of ``module``'s parameters. ``update()`` after each optimizer step; ``copy_to(target)``."""

    def __init__(self, module: nn.Module, *, decay: float):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self._names = [n for n, _ in module.named_parameters()]
        for i, (_, p) in enumerate(module.named_parameters()):
            self.register_buffer(f"avg{i}", torch.zeros_like(p, dtype=torch.float32))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))
        self._module = [module]  # not a submodule: its parameters stay out of this state_dict

    @torch.no_grad()
    def update(self) -> None:
        self.count += 1
        for i, p in enumerate(self._module[0].parameters()):
            avg = getattr(self, f"avg{i}")
            avg.lerp_(p.detach().float(), 1.0 - self.decay)  # avg += (1 - decay) (p - avg)

    @torch.no_grad()
    def copy_to(self, target: nn.Module) -> None:
        """Load the bias-corrected averages into ``target`` (a network of the same structure); copy buffers."""
        t = int(self.count)
        correction = 1.0 - self.decay**t if t > 0 else 1.0
        source = self._module[0]
        for i, (p_src, p_dst) in enumerate(zip(source.parameters(), target.parameters())):
            if t == 0:
                p_dst.copy_(p_src)
            else:
                p_dst.copy_(getattr(self, f"avg{i}") / correction)
        for b_src, b_dst in zip(source.buffers(), target.buffers()):
            b_dst.copy_(b_src)
