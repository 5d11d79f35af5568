"""Additive Gaussian noise, the discriminator's regulariser in the reference semi-supervised models.

The reference MNIST discriminator (openai/improved-gan, ``GaussianNoiseLayer``; paper section 5) adds noise
with sigma 0.3 to the input and 0.5 after every hidden layer; the CIFAR one 0.2 on the input. Noise is drawn
only in training mode; in eval mode (the reference's ``deterministic=True``) the layer is the identity. The
reference's ``use_last_noise`` option (reusing one draw across calls) is not provided.
"""

from __future__ import annotations

import torch
from torch import nn


class GaussianNoise(nn.Module):
    """``y = x + sigma * eps``, eps ~ N(0, I) from ``torch.randn_like``, in training mode; ``y = x`` in eval.

    Shape: any, unchanged. ``sigma`` is a fixed hyper-parameter (not learned), >= 0.
    """

    def __init__(self, sigma: float) -> None:
        super().__init__()
        if not sigma >= 0:
            raise ValueError(f"GaussianNoise: sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` of any shape ``(N, *)`` -> the same shape: ``x + sigma * N(0, I)`` in training mode, ``x`` in eval."""
        if not self.training or self.sigma == 0:
            return x
        return x + self.sigma * torch.randn_like(x)

    def extra_repr(self) -> str:
        """The text inside ``repr(layer)``: its sizes and options."""
        return f"sigma={self.sigma}"
