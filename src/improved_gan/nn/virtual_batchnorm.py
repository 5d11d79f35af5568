"""Virtual batch normalisation (Salimans et al., 2016, section 3.5), used in the generator.

Each example x is normalised with the statistics of a fixed reference batch (R examples) together with x:

    mean(x)    = m(x) / (R + 1) + R m_ref / (R + 1)
    mean_sq(x) = s(x) / (R + 1) + R s_ref / (R + 1)
    y = gamma * (x - mean(x)) / sqrt(mean_sq(x) - mean(x)^2 + eps) + beta

per channel, where m(x), s(x) are x's own mean and mean of squares over its spatial positions (x itself and
x^2 for an (N, C) input) and m_ref, s_ref the same over the reference batch's examples and spatial positions.
The weights R/(R + 1) count examples, so for inputs without spatial axes this is exactly batch norm over the
concatenation [R; x] evaluated at x. An example's output depends on itself and R only.

The reference batch is fixed as INPUT but forwarded through the CURRENT network at every step, inside
:func:`virtual_batch_reference`; there each layer normalises the reference batch with its own statistics and
records them. The recorded statistics stay attached to the autograd graph, so the forwards that follow in the
same step send gradients through them into the network and the reference input. Their detached values are also
copied into buffers (``ref_mean``, ``ref_mean_sq``, ``ref_size``), so ``state_dict()`` holds them and a loaded
generator samples without a new reference pass. Run the reference pass once per parameter update, before the
forwards of that update. There are no running averages: train and eval mode behave the same.

Deviations: the paper gives no VBN code; OpenAI's ImageNet code (and TF-GAN) compute the same normalisation.
The variance is clamped at 0 before eps is added, against rounding in ``mean_sq - mean^2``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


class VirtualBatchNorm(nn.Module):
    """Virtual batch norm over channel axis 1 of an ``(N, C)`` or ``(N, C, *spatial)`` input; output alike.

    Args:
        num_features: C.
        eps: added to the variance.
        affine: learn a per-channel scale gamma (``weight``, init 1) and shift beta (``bias``, init 0).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        if num_features < 1:
            raise ValueError(f"VirtualBatchNorm: num_features must be >= 1, got {num_features}")
        self.num_features, self.eps, self.affine = num_features, eps, affine
        self.register_parameter("weight", nn.Parameter(torch.ones(num_features)) if affine else None)  # (C,)
        self.register_parameter("bias", nn.Parameter(torch.zeros(num_features)) if affine else None)  # (C,)
        self.register_buffer("ref_mean", torch.zeros(num_features))  # (C,)
        self.register_buffer("ref_mean_sq", torch.zeros(num_features))  # (C,)
        self.register_buffer("ref_size", torch.zeros((), dtype=torch.int64))  # R; 0 = nothing recorded
        self._recording = False  # transient: True inside virtual_batch_reference
        # (m_ref, s_ref, R) of the last reference pass, still attached to its autograd graph
        self._live: tuple[torch.Tensor, torch.Tensor, int] | None = None

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(
                f"VirtualBatchNorm: expected input (N, {self.num_features}) or "
                f"(N, {self.num_features}, *spatial), got {tuple(x.shape)}"
            )

    def _normalise(self, x: torch.Tensor, mean: torch.Tensor, mean_sq: torch.Tensor) -> torch.Tensor:
        var = (mean_sq - mean * mean).clamp_min(0.0)
        shape = (mean.shape[0] if mean.dim() == 2 else 1, self.num_features) + (1,) * (x.dim() - 2)
        y = (x - mean.reshape(shape)) * torch.rsqrt(var + self.eps).reshape(shape)
        if self.affine:
            view = (1, self.num_features) + (1,) * (x.dim() - 2)
            y = y * self.weight.reshape(view) + self.bias.reshape(view)
        return y

    def _reference_stats(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        if self._live is not None:
            return self._live
        if int(self.ref_size) == 0:
            raise RuntimeError(
                "VirtualBatchNorm: no reference statistics; run a reference pass first, "
                "`with virtual_batch_reference(model): model(reference_batch)`"
            )
        return self.ref_mean, self.ref_mean_sq, int(self.ref_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        spatial = tuple(range(2, x.dim()))
        if self._recording:  # reference pass: normalise the reference batch with its own statistics
            dims = (0, *spatial)
            m_ref, s_ref = x.mean(dim=dims), (x * x).mean(dim=dims)  # (C,), (C,)
            self._live = (m_ref, s_ref, x.shape[0])
            with torch.no_grad():
                self.ref_mean.copy_(m_ref)
                self.ref_mean_sq.copy_(s_ref)
                self.ref_size.fill_(x.shape[0])
            return self._normalise(x, m_ref, s_ref)
        m_ref, s_ref, R = self._reference_stats()
        m = x.mean(dim=spatial) if spatial else x  # (N, C)
        s = (x * x).mean(dim=spatial) if spatial else x * x  # (N, C)
        mean = (m + R * m_ref) / (R + 1)  # (N, C)
        mean_sq = (s + R * s_ref) / (R + 1)  # (N, C)
        return self._normalise(x, mean, mean_sq)

    # Live statistics belong to this process, device and parameter values: drop them when any of these change.
    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> VirtualBatchNorm:
        self._live = None
        return super()._apply(fn, *args, **kwargs)

    # copy.deepcopy and pickling: live statistics are non-leaf tensors of this step's graph; the buffers keep them.
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_live"] = None
        return state

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._live = None
        super()._load_from_state_dict(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, affine={self.affine}"


@contextlib.contextmanager
def virtual_batch_reference(module: nn.Module) -> Iterator[nn.Module]:
    """Context manager: every :class:`VirtualBatchNorm` in ``module`` records the batch passing through it.

    ``with virtual_batch_reference(G): G(z_ref)`` — inside, each layer normalises the reference batch with its
    own statistics and keeps them (with their autograd graph, and as buffers) for the forwards that follow.
    The live statistics of an earlier pass are dropped on entry (a layer the pass does not reach falls back to
    its buffers). Nesting is allowed.
    """
    layers = [m for m in module.modules() if isinstance(m, VirtualBatchNorm)]
    if not layers:
        raise ValueError(f"virtual_batch_reference: {type(module).__name__} contains no VirtualBatchNorm")
    previous = [layer._recording for layer in layers]
    for layer in layers:
        layer._live = None
        layer._recording = True
    try:
        yield module
    finally:
        for layer, was in zip(layers, previous):
            layer._recording = was
