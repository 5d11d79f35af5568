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

Precision: statistics and normalisation are computed in at least float32 whatever the input's dtype (a
bfloat16 input from a layer under ``torch.autocast`` is upcast), and the output has the input's dtype.
``mean_sq - mean^2`` cancels: in bfloat16 (8-bit mantissa) the variance of a channel whose mean is 4 standard
deviations from 0 would be off by about 20 %.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

_CONSUMED_MESSAGE = (
    "VirtualBatchNorm: the statistics of the last reference pass were already used by a backward pass "
    "(their graph is freed). Run `with virtual_batch_reference(G): G(z_ref)` again before every generator "
    "update (paper §3.5); a discriminator step that needs no gradient for G should generate its batch under "
    "torch.no_grad() or detach it"
)


class _ReferenceStatistics(torch.autograd.Function):
    """Identity on the reference statistics ``(m_ref, s_ref)``; its node saves ``m_ref`` so that a later forward
    can tell whether a backward pass (without ``retain_graph``) has freed the graph behind them."""

    @staticmethod
    def forward(ctx, m_ref: torch.Tensor, s_ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.save_for_backward(m_ref)
        return m_ref.view_as(m_ref), s_ref.view_as(s_ref)

    @staticmethod
    def backward(ctx, grad_m: torch.Tensor, grad_s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return grad_m, grad_s


def _graph_freed(m_ref: torch.Tensor) -> bool:
    node = m_ref.grad_fn
    if node is None or type(node).__name__ != "_ReferenceStatisticsBackward":
        return False
    try:
        _ = node.saved_tensors
    except RuntimeError:  # "Trying to backward through the graph a second time (or directly access ...)"
        return True
    return False


class _ConsumedReference(torch.autograd.Function):
    """Forward: the (detached) reference statistics, unchanged. Backward: the RuntimeError that says what to do.

    ``x`` (the layer's input) is an input only so that the outputs require grad exactly when a backward could
    reach them."""

    @staticmethod
    def forward(ctx, m_ref: torch.Tensor, s_ref: torch.Tensor, x: torch.Tensor):
        return m_ref.clone(), s_ref.clone()

    @staticmethod
    def backward(ctx, grad_m: torch.Tensor, grad_s: torch.Tensor):
        raise RuntimeError(_CONSUMED_MESSAGE)


class VirtualBatchNorm(nn.Module):
    """Virtual batch norm (paper §3.5) over channel axis 1 of an ``(N, C)`` or ``(N, C, *spatial)`` input.

    Use it in the generator in place of ``nn.BatchNorm1d`` / ``nn.BatchNorm2d``, and run a reference pass
    before every generator update (the forwards of that update use its statistics)::

        with virtual_batch_reference(G):
            G(z_ref)  # z_ref: one fixed batch of noise, drawn once before training
        loss_g = ...(G(z))  # every example normalised with the reference batch's statistics and its own
        loss_g.backward()  # gradients also flow through the reference statistics

    A second backward through the statistics of one reference pass raises a RuntimeError that says to run
    the pass again (see the docs' page on virtual batch norm). Train and eval mode behave the same (there
    are no running averages); the last pass's statistics are buffers, so a loaded generator samples
    without a new pass.

    Args:
        num_features: C, the number of channels (attribute ``num_features``, as in PyTorch's norm layers).
        eps: added to the variance; default 1e-5.
        affine: learn a per-channel scale gamma (``weight``, init 1) and shift beta (``bias``, init 0);
            default True.

    Shape: input ``(N, C)`` or ``(N, C, *spatial)``, output the same.
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

    @property
    def has_reference(self) -> bool:
        """Whether reference statistics are available (a reference pass ran, or they were loaded)."""
        return self._live is not None or int(self.ref_size) > 0

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(
                f"VirtualBatchNorm: expected input (N, {self.num_features}) or "
                f"(N, {self.num_features}, *spatial), got {tuple(x.shape)}"
            )

    def _normalise(self, x: torch.Tensor, mean: torch.Tensor, mean_sq: torch.Tensor) -> torch.Tensor:
        mean_sq, mean = mean_sq.to(x.dtype), mean.to(x.dtype)
        var = (mean_sq - mean * mean).clamp_min(0.0)
        shape = (mean.shape[0] if mean.dim() == 2 else 1, self.num_features) + (1,) * (x.dim() - 2)
        y = (x - mean.reshape(shape)) * torch.rsqrt(var + self.eps).reshape(shape)
        if self.affine:
            view = (1, self.num_features) + (1,) * (x.dim() - 2)
            y = y * self.weight.to(x.dtype).reshape(view) + self.bias.to(x.dtype).reshape(view)
        return y

    def _reference_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        if self._live is not None:
            m_ref, s_ref, R = self._live
            if torch.is_grad_enabled() and _graph_freed(m_ref):
                # Same values, but a backward through them raises the error that says what to do (PyTorch's
                # own would say "backward through the graph a second time"). Forwards without a backward
                # (sampling) still work.
                m_ref, s_ref = _ConsumedReference.apply(m_ref.detach(), s_ref.detach(), x)
            return m_ref, s_ref, R
        if int(self.ref_size) == 0:
            raise RuntimeError(
                "VirtualBatchNorm: no reference statistics; run a reference pass first, "
                "`with virtual_batch_reference(model): model(reference_batch)`"
            )
        return self.ref_mean, self.ref_mean_sq, int(self.ref_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` ``(N, C)`` or ``(N, C, *spatial)``; returns the same shape.

        Inside :func:`virtual_batch_reference`: ``x`` is the reference batch; it is normalised with its own
        per-channel statistics, which are recorded. Outside: each example is normalised with the recorded
        statistics and its own, weights R/(R + 1) and 1/(R + 1) (module docstring). Raises RuntimeError if
        no reference pass was ever run. Computed in at least float32, also under ``torch.autocast``; the output
        has ``x``'s dtype.
        """
        self._check_input(x)
        with torch.autocast(x.device.type, enabled=False):
            return self._forward(x.to(torch.promote_types(x.dtype, torch.float32))).to(x.dtype)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = tuple(range(2, x.dim()))
        if self._recording:  # reference pass: normalise the reference batch with its own statistics
            dims = (0, *spatial)
            m_ref, s_ref = x.mean(dim=dims), (x * x).mean(dim=dims)  # (C,), (C,)
            if m_ref.requires_grad or s_ref.requires_grad:
                m_ref, s_ref = _ReferenceStatistics.apply(m_ref, s_ref)  # identity, marks the graph
            self._live = (m_ref, s_ref, x.shape[0])
            with torch.no_grad():
                self.ref_mean.copy_(m_ref)
                self.ref_mean_sq.copy_(s_ref)
                self.ref_size.fill_(x.shape[0])
            return self._normalise(x, m_ref, s_ref)
        m_ref, s_ref, R = self._reference_stats(x)
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
        """The text inside ``repr(layer)``: its sizes and options."""
        return f"{self.num_features}, eps={self.eps}, affine={self.affine}"


@contextlib.contextmanager
def virtual_batch_reference(module: nn.Module) -> Iterator[nn.Module]:
    """Context manager (paper §3.5): every :class:`VirtualBatchNorm` in ``module`` records the batch passing
    through it as its reference batch.

    ``with virtual_batch_reference(G): G(z_ref)`` — inside, each layer normalises the reference batch with its
    own statistics and keeps them (with their autograd graph, and as buffers) for the forwards that follow.
    Run it once before every generator update: one backward pass frees the statistics' graph, and a second
    backward through them raises a RuntimeError saying so. The live statistics of an earlier pass are dropped
    on entry (a layer the pass does not reach falls back to its buffers). Nesting is allowed. A generator
    with weight-normalised layers is initialised inside it:
    ``with virtual_batch_reference(G): data_dependent_init(G, z_ref)``.

    Args:
        module: a module containing at least one :class:`VirtualBatchNorm` (ValueError otherwise).

    Yields:
        ``module``.
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
