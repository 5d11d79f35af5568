"""Parts shared by the networks of :mod:`improved_gan.models`: the two base classes and the generator's norm.

Conventions every model follows (the training loop relies on them):

- a discriminator's ``forward(x)`` returns ``(logits, features)``: logits ``(N, K)`` with ``K = num_outputs``
  (K classes of the K+1-class discriminator, paper §5, whose "generated" logit is implicitly 0; K = 1 for an
  unsupervised GAN, where ``D(x) = sigmoid(logsumexp(l)) = sigmoid(l)``) and features ``(N, feature_dim)``,
  the layer the reference code matches in feature matching (paper §3.1); with minibatch discrimination, the layer
  that feeds it;
- a generator's ``forward(z)`` maps ``(N, z_dim)`` to data in the data set's normalised range, and
  ``sample_z(n)`` draws z from the distribution the reference code uses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from improved_gan.nn import MinibatchDiscrimination, VirtualBatchNorm, WeightNormLinear

NORMS = ("batch", "virtual", "none")


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """The reference code's leaky ReLU, ``max(x, 0.2 x)``."""
    return F.leaky_relu(x, 0.2)


class ShiftNorm(nn.Module):
    """Normalisation with a learned shift, no learned scale: the reference code's ``batch_norm(g=None)``.

    ``kind="batch"``: batch norm (batch statistics in training, running averages with momentum 0.1 in eval;
    the reference code's eps 1e-6); ``kind="virtual"``: :class:`~improved_gan.nn.VirtualBatchNorm` (paper §3.5,
    eps 1e-5). Input ``(N, C)`` or ``(N, C, H, W)``, statistics per channel (per unit for ``(N, C)``); same
    output shape. The preceding layer has no bias: this module's ``bias`` replaces it. For ``kind="none"`` use
    :func:`make_norm`, which returns ``nn.Identity`` (and the preceding layer then keeps its own bias).
    """

    def __init__(self, num_features: int, kind: str, *, spatial: bool) -> None:
        super().__init__()
        if kind == "batch":
            bn = nn.BatchNorm2d if spatial else nn.BatchNorm1d
            self.norm: nn.Module = bn(num_features, eps=1e-6, affine=False)
        elif kind == "virtual":
            self.norm = VirtualBatchNorm(num_features, affine=False)
        else:
            raise ValueError(f"ShiftNorm: kind must be 'batch' or 'virtual', got {kind!r}")
        self.bias = nn.Parameter(torch.zeros(num_features))  # (C,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(x)  # (N, C, *spatial)
        return y + self.bias.reshape((1, -1) + (1,) * (x.dim() - 2))


def check_norm(owner: str, norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"{owner}: norm must be one of {', '.join(NORMS)}; got {norm!r}")


def make_norm(num_features: int, norm: str, *, spatial: bool) -> nn.Module:
    """:class:`ShiftNorm` for ``"batch"``/``"virtual"``, ``nn.Identity`` for ``"none"``."""
    return nn.Identity() if norm == "none" else ShiftNorm(num_features, norm, spatial=spatial)


def freeze_scales(layers: list[nn.Module]) -> None:
    """Fix the weight-norm scale ``g`` of these layers after its data-dependent init (reference code)."""
    for layer in layers:
        layer.g.requires_grad_(False)


class Discriminator(nn.Module):
    """Base of the discriminators: optional minibatch discrimination (paper §3.2) and the weight-normalised head.

    Subclasses compute ``features`` ``(N, feature_dim)`` and call :meth:`head` for the logits ``(N, K)``.
    """

    num_outputs: int
    feature_dim: int

    def _build_head(
        self,
        feature_dim: int,
        num_outputs: int,
        *,
        minibatch_kernels: int,
        minibatch_kernel_dim: int,
        init_scale: float,
    ) -> None:
        if num_outputs < 1:
            raise ValueError(f"{type(self).__name__}: num_outputs must be >= 1, got {num_outputs}")
        if minibatch_kernels < 0:
            raise ValueError(
                f"{type(self).__name__}: minibatch_kernels must be >= 0, got {minibatch_kernels}"
            )
        self.num_outputs, self.feature_dim = num_outputs, feature_dim
        self.minibatch = (
            MinibatchDiscrimination(feature_dim, minibatch_kernels, minibatch_kernel_dim)
            if minibatch_kernels > 0
            else None
        )
        # the reference code trains this last layer's scale (train_g=True / train_scale=True)
        self.out = WeightNormLinear(feature_dim + minibatch_kernels, num_outputs, init_scale=init_scale)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """``(N, feature_dim)`` -> logits ``(N, num_outputs)``, through minibatch discrimination if any."""
        if self.minibatch is not None:
            h = self.minibatch(h)  # (N, feature_dim + B)
        return self.out(h)  # (N, K)


class Generator(nn.Module):
    """Base of the generators: ``z_dim``, ``noise`` ("uniform": U[0, 1), "normal": N(0, I)), ``sample_z``."""

    z_dim: int
    noise: str = "uniform"

    def sample_z(
        self, n: int, *, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """``(n, z_dim)`` noise, drawn on ``generator``'s device (CPU without one) and returned on ``device``
        (default: this module's device), so a CPU generator gives the same z on every device."""
        if n < 0:
            raise ValueError(f"{type(self).__name__}.sample_z: n must be >= 0, got {n}")
        if device is None:
            device = next(self.parameters()).device
        rng_device = generator.device if generator is not None else torch.device("cpu")
        draw = torch.rand if self.noise == "uniform" else torch.randn
        z = draw(n, self.z_dim, generator=generator, device=rng_device)  # (n, z_dim)
        return z.to(device)

    def _check_z(self, z: torch.Tensor) -> None:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(
                f"{type(self).__name__}: expected z of shape (N, {self.z_dim}), got {tuple(z.shape)}"
            )
