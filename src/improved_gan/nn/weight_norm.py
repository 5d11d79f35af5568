"""Weight-normalised layers with data-dependent initialisation, as the paper's reference code uses them.

Weight normalisation (Salimans & Kingma, 2016, "Weight Normalization", equation 2): the weight of each output
unit k is ``w_k = g_k * v_k / ||v_k||_2``, with the L2 norm over all of ``v_k``'s entries (the input features,
or the input channels and the kernel window). Parameters: direction ``v``, scale ``g`` (one per output unit),
``bias``.

Data-dependent initialisation (same paper, section 3): one batch x is passed through the network; each layer
computes its pre-activation ``t = w . x`` with its current weight (without bias), its per-unit mean ``mu[t]``
and standard deviation ``sigma[t]`` over the batch (and the spatial positions of a convolution), and sets
``g <- g * init_scale / sigma[t]`` and ``bias <- -mu[t] * init_scale / sigma[t]``, so that on that batch each
unit's pre-activation has mean 0 and standard deviation ``init_scale``. Layers are initialised in forward
order, each seeing the output of the already-initialised layers before it: :func:`data_dependent_init`.

Reference code (openai/improved-gan, ``mnist_svhn_cifar10/nn.py``, ``WeightNormLayer`` and ``DenseLayer``)
and its deviations, here and there:

- it computes ``||v||`` as ``sqrt(1e-6 + sum v^2)``; here the exact norm (the paper's form) is used;
- sigma is the population standard deviation (``sqrt(mean((t - mu)^2))``), as here; a unit whose
  pre-activation is constant on the init batch (sigma = 0) keeps its g here (the reference divides by zero);
- it initialises v ~ N(0, 0.05) (0.1 in the older MNIST ``DenseLayer``) and g = 1, as here;
- its hidden layers keep g fixed during training (``train_g=False``; only the last layer trains it). Here g is
  trained unless ``train_scale=False``;
- its init pass runs with noise and dropout on (``deterministic=False``); :func:`data_dependent_init` leaves
  train/eval mode to the caller.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

_V_INIT_STD = 0.05  # reference code: W=Normal(0.05)


class DataDependentInit:
    """Mixin: a layer that sets its parameters from the first batch it sees under :func:`data_dependent_init`.

    A subclass registers a boolean buffer ``initialized``, implements :meth:`init_from_batch` (in-place
    updates of its parameters from its input, under ``torch.no_grad``) and calls
    ``_maybe_data_dependent_init`` at the start of ``forward``.
    """

    _ddi_pending: bool = False  # transient: True only during a data_dependent_init call, until first forward

    def init_from_batch(self, x: torch.Tensor) -> None:  # pragma: no cover - abstract
        """Set this layer's parameters from its input ``x`` (in place, under ``torch.no_grad``).

        Called by :func:`data_dependent_init` on the first batch that reaches the layer; not called directly.
        """
        raise NotImplementedError

    def _maybe_data_dependent_init(self, x: torch.Tensor) -> None:
        if self._ddi_pending:
            self._ddi_pending = False  # a layer called twice in one forward is initialised by its first call
            with torch.no_grad():
                self.init_from_batch(x)
                self.initialized.fill_(True)


def data_dependent_init(module: nn.Module, *inputs: Any, **kwargs: Any) -> Any:
    """Run ONE forward ``module(*inputs, **kwargs)`` under ``torch.no_grad`` in init mode; return its output.

    Every :class:`DataDependentInit` layer inside ``module`` (the weight-normalised layers of this file and
    :class:`~improved_gan.nn.MinibatchDiscrimination`) sets its parameters from the batch that reaches it, in
    forward order, and sets its ``initialized`` buffer (weight normalisation's init, Salimans & Kingma 2016,
    as the paper's reference code uses it for every model of paper §5). Calling it again re-initialises.
    The module's train/eval mode is left as it is (the reference code initialises with noise and dropout
    on). Warns if some such layer was not reached. Under DistributedDataParallel run it before wrapping the
    model (DDP then broadcasts rank 0's parameters).

    A generator with :class:`~improved_gan.nn.VirtualBatchNorm` layers is initialised inside the reference
    context, so that each layer is initialised on inputs normalised with their own statistics::

        with virtual_batch_reference(G):
            data_dependent_init(G, z_ref)

    Outside it, a generator whose VBN layers have no reference statistics yet raises a RuntimeError that
    says so.

    Args:
        module: the network; it must contain at least one :class:`DataDependentInit` layer (ValueError).
        inputs, kwargs: passed to ``module``: a batch of real data for a discriminator (the reference code
            uses 500 examples), a batch of noise for a generator.

    Returns:
        ``module``'s output on that batch.
    """
    layers = [m for m in module.modules() if isinstance(m, DataDependentInit)]
    if not layers:
        name = type(module).__name__
        raise ValueError(f"data_dependent_init: {name} contains no data-dependent-init layer")
    _check_vbn_reference(module)
    for layer in layers:
        layer._ddi_pending = True
    try:
        with torch.no_grad():
            output = module(*inputs, **kwargs)
    finally:
        missed = [layer for layer in layers if layer._ddi_pending]
        for layer in layers:
            layer._ddi_pending = False
    if missed:
        names = ", ".join(type(layer).__name__ for layer in missed)
        message = f"data_dependent_init: {len(missed)} layer(s) not reached by the forward: {names}"
        warnings.warn(message, stacklevel=2)
    return output


def _check_vbn_reference(module: nn.Module) -> None:
    """A generator with virtual batch norm must be initialised inside its reference context (see above)."""
    from improved_gan.nn.virtual_batchnorm import VirtualBatchNorm

    for layer in module.modules():
        if isinstance(layer, VirtualBatchNorm) and not layer._recording and not layer.has_reference:
            name = type(module).__name__
            raise RuntimeError(
                f"data_dependent_init: {name} has VirtualBatchNorm layers without reference statistics; "
                "initialise it inside the reference context, with the reference batch: "
                f"`with virtual_batch_reference(G): data_dependent_init(G, z_ref)` (paper §3.5)"
            )


class _WeightNorm(DataDependentInit, nn.Module):
    """Shared parts: ``weight = g * v / ||v||`` and the data-dependent init of g and bias."""

    _unit_dim_v: int  # the output-unit axis of v
    _unit_dim_out: int  # the output-unit axis of the layer's output

    def __init__(self, v_shape: tuple[int, ...], *, bias: bool, init_scale: float, train_scale: bool) -> None:
        super().__init__()
        if not init_scale > 0:
            raise ValueError(f"{type(self).__name__}: init_scale must be > 0, got {init_scale}")
        self.init_scale = float(init_scale)
        units = v_shape[self._unit_dim_v]
        self.v = nn.Parameter(torch.randn(v_shape) * _V_INIT_STD)
        self.g = nn.Parameter(torch.ones(units), requires_grad=train_scale)  # (units,)
        self.register_parameter("bias", nn.Parameter(torch.zeros(units)) if bias else None)  # (units,)
        self.register_buffer("initialized", torch.tensor(False))

    @property
    def weight(self) -> torch.Tensor:
        """The weight that forward uses: ``g * v / ||v||``, norm over all axes but the output-unit axis."""
        dims = [d for d in range(self.v.dim()) if d != self._unit_dim_v]
        shape = [1] * self.v.dim()
        shape[self._unit_dim_v] = -1
        scale = self.g / torch.linalg.vector_norm(self.v, dim=dims)  # (units,)
        return self.v * scale.reshape(shape)  # same shape as v

    def _preactivation(self, x: torch.Tensor, weight: torch.Tensor, bias: Tensor | None) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover

    def _check_input(self, x: torch.Tensor) -> None:
        raise NotImplementedError  # pragma: no cover

    def init_from_batch(self, x: torch.Tensor) -> None:
        """Set g and bias so that on ``x`` every unit's pre-activation has mean 0 and std ``init_scale``."""
        self._check_input(x)
        t = self._preactivation(x, self.weight, None)  # current weight, no bias
        unit = self._unit_dim_out % t.dim()
        dims = [d for d in range(t.dim()) if d != unit]
        mean = t.mean(dim=dims)  # (units,)
        std = torch.sqrt(t.var(dim=dims, correction=0))  # (units,) population std, as the reference code
        inv = torch.where(std > 0, self.init_scale / std, torch.ones_like(std))  # (units,)
        self.g.mul_(inv)
        if self.bias is not None:
            self.bias.copy_(-mean * inv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` -> the pre-activation ``t = w * x + bias`` with ``w = g * v / ||v||`` (shapes in the class
        docstring: ``(*, in_features) -> (*, out_features)`` for the linear layer, ``(N, C_in, H, W) ->
        (N, C_out, H', W')`` for the convolutions). Under :func:`data_dependent_init` the first call sets
        ``g`` and ``bias`` from ``x`` first."""
        self._check_input(x)
        self._maybe_data_dependent_init(x)
        return self._preactivation(x, self.weight, self.bias)


class WeightNormLinear(_WeightNorm):
    """Weight-normalised ``nn.Linear``: ``y = x (g v/||v||)^T + bias``, ``v`` of shape (out, in).

    Input ``(*, in_features)``, output ``(*, out_features)``; init statistics over all axes but the last.
    """

    _unit_dim_v = 0
    _unit_dim_out = -1

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        init_scale: float = 1.0,
        train_scale: bool = True,
    ) -> None:
        self.in_features, self.out_features = in_features, out_features
        super().__init__(
            (out_features, in_features), bias=bias, init_scale=init_scale, train_scale=train_scale
        )

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            shape = tuple(x.shape)
            raise ValueError(f"WeightNormLinear: expected input (*, {self.in_features}), got {shape}")

    def _preactivation(self, x: torch.Tensor, weight: torch.Tensor, bias: Tensor | None) -> torch.Tensor:
        return F.linear(x, weight, bias)  # (*, out)

    def extra_repr(self) -> str:
        """The text inside ``repr(layer)``: its sizes and options."""
        bias = self.bias is not None
        return f"{self.in_features}, {self.out_features}, bias={bias}, init_scale={self.init_scale}"


class _WeightNormConvBase(_WeightNorm):
    _unit_dim_out = 1

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__}: expected input (N, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )

    def extra_repr(self) -> str:
        """The text inside ``repr(layer)``: its sizes and options."""
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, bias={self.bias is not None}, init_scale={self.init_scale}"
        )


class WeightNormConv2d(_WeightNormConvBase):
    """Weight-normalised ``nn.Conv2d``; ``v`` is (out_channels, in_channels, kH, kW), normed per out channel.

    Input ``(N, in_channels, H, W)``, output ``(N, out_channels, H', W')`` as ``F.conv2d``; init statistics
    over the batch and the spatial positions.
    """

    _unit_dim_v = 0

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        *,
        bias: bool = True,
        init_scale: float = 1.0,
        train_scale: bool = True,
    ) -> None:
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        v_shape = (out_channels, in_channels, *self.kernel_size)
        super().__init__(v_shape, bias=bias, init_scale=init_scale, train_scale=train_scale)

    def _preactivation(self, x: torch.Tensor, weight: torch.Tensor, bias: Tensor | None) -> torch.Tensor:
        return F.conv2d(x, weight, bias, stride=self.stride, padding=self.padding)  # (N, out, H', W')


class WeightNormConvTranspose2d(_WeightNormConvBase):
    """Weight-normalised ``nn.ConvTranspose2d``; ``v`` is ``(in_channels, out_channels, kH, kW)``, normed over
    axes 0, 2, 3 for each output channel (as the reference code's ``Deconv2DLayer``).

    Input ``(N, in_channels, H, W)``, output ``(N, out_channels, H', W')`` as ``F.conv_transpose2d``.
    """

    _unit_dim_v = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        output_padding: int | tuple[int, int] = 0,
        *,
        bias: bool = True,
        init_scale: float = 1.0,
        train_scale: bool = True,
    ) -> None:
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        self.output_padding = _pair(output_padding)
        v_shape = (in_channels, out_channels, *self.kernel_size)
        super().__init__(v_shape, bias=bias, init_scale=init_scale, train_scale=train_scale)

    def _preactivation(self, x: torch.Tensor, weight: torch.Tensor, bias: Tensor | None) -> torch.Tensor:
        return F.conv_transpose2d(
            x, weight, bias, stride=self.stride, padding=self.padding, output_padding=self.output_padding
        )  # (N, out, H', W')
