"""Historical averaging, a regulariser for both players (Salimans et al., 2016, section 3.3).

``penalty = || theta - (1/t) sum_{i=1}^{t} theta[i] ||^2``, with theta[i] the parameters at past time i and
the squared L2 norm summed over all parameters. The caller adds ``weight * penalty()`` to its loss.

The paper does not say when a snapshot theta[i] is taken. Here one snapshot is taken per call to
:meth:`HistoricalAveraging.update`; the training loop calls it once after each optimizer step of the player.
The reference code does not implement this technique (its "parameter averaging" is a test-time exponential
moving average, a different thing), so this follows the paper alone.

Memory is ``O(|theta|)``: the running mean is kept, not the snapshots. It is updated as
``mean_t = mean_{t-1} + (theta[t] - mean_{t-1}) / t`` in float64 buffers, so after thousands of snapshots of
float32 parameters it still equals the exact mean to float32 precision, with no drift.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["HistoricalAveraging"]


class HistoricalAveraging(nn.Module):
    """Running mean of parameter snapshots and the historical-averaging penalty (paper §3.3).

    Add ``weight * ha.penalty()`` to the player's loss (the presets' ``+ha`` and ``-l+ha`` variants use
    weight 1e-3) and call ``ha.update()`` after each of its optimizer steps; see the docs' page on
    historical averaging.

    Args:
        params: an ``nn.Module`` (all of its parameters) or an iterable of tensors (usually Parameters).
            Repeated tensors are tracked once.

    The tracked parameters are held by reference and are not part of this module: its ``state_dict()`` holds
    only the running means (buffers ``mean_0``, ``mean_1``, ... in the order of the parameters, float64,
    each of its parameter's shape) and the snapshot ``count`` (an int64 scalar kept on the CPU).
    ``.to(device)`` moves the means; they stay float64 whatever dtype is asked for, so devices without
    float64 (Apple's MPS) are not supported.
    """

    def __init__(self, params: nn.Module | Iterable[torch.Tensor]) -> None:
        super().__init__()
        tensors = list(params.parameters()) if isinstance(params, nn.Module) else list(params)
        tracked: list[torch.Tensor] = []
        seen: set[int] = set()
        for i, p in enumerate(tensors):
            if not isinstance(p, torch.Tensor) or not p.dtype.is_floating_point:
                raise ValueError(f"HistoricalAveraging: parameter {i} is not a floating-point tensor")
            if id(p) not in seen:
                seen.add(id(p))
                tracked.append(p)
        if not tracked:
            raise ValueError("HistoricalAveraging: no parameters to track")
        self._params = tracked  # a plain list: not registered, not in state_dict
        for i, p in enumerate(tracked):
            self.register_buffer(f"mean_{i}", torch.zeros(p.shape, dtype=torch.float64, device=p.device))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))

    def _means(self) -> list[torch.Tensor]:
        return [getattr(self, f"mean_{i}") for i in range(len(self._params))]

    @property
    def num_snapshots(self) -> int:
        """The number t of snapshots averaged so far."""
        return int(self.count)

    @torch.no_grad()
    def update(self) -> None:
        """Add the parameters' current values as one snapshot: ``mean += (theta - mean) / t``."""
        t = int(self.count) + 1
        for p, mean in zip(self._params, self._means()):
            theta = p.detach().to(device=mean.device, dtype=torch.float64)  # (*p.shape)
            mean.add_((theta - mean).div_(t))  # never in place on theta: it may share p's storage
        self.count.fill_(t)

    def penalty(self) -> torch.Tensor:
        """``sum over parameters of || theta - mean ||^2``: a scalar, differentiable in the parameters.

        The difference ``theta - mean`` is taken in float64 (casting the mean to float32 first would round
        it to float32's spacing, about 1e-3 near 1e4, as large as the differences themselves), then squared
        and summed in the parameters' dtype, on their device. Before the first :meth:`update` the penalty is
        exactly 0 with a zero gradient: the reference point is then the current parameters themselves.
        """
        first = self._params[0]
        total = torch.zeros((), dtype=first.dtype, device=first.device)
        snapshots = int(self.count)
        for p, mean in zip(self._params, self._means()):
            if snapshots == 0:
                diff = p - p.detach()  # (*p.shape), all zeros
            else:
                diff = (p.double() - mean.to(p.device)).to(p.dtype)  # (*p.shape)
            total = total + diff.square().sum().to(total.dtype)
        return total

    def _apply(self, fn, recurse=True):
        """Follow ``.to()`` and ``.cuda()`` for the device only: means stay float64, the count on the CPU."""
        for name, buf in self._buffers.items():
            if buf is None or name == "count":
                continue
            moved = fn(buf)
            self._buffers[name] = buf.to(device=moved.device)
        return self

    def extra_repr(self) -> str:
        """The text inside ``repr(ha)``: the number of tracked tensors and of their elements."""
        numel = sum(p.numel() for p in self._params)
        return f"tensors={len(self._params)}, numel={numel}"
