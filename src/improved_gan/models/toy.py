"""Small MLPs for the 2-D Gaussian mixtures (:mod:`improved_gan.data.toy`), where mode collapse is measurable.

The paper has no toy experiment; these follow the later mode-collapse literature (Unrolled GANs, Metz et al.
2017: two hidden layers of 128 units) with the reference code's building blocks, so that the techniques of
section 3 apply unchanged:

- ToyDiscriminator: ``x (N, 2)`` -> 2 x [weight-norm dense, leaky ReLU 0.2] -> ``features`` ->
  [minibatch discrimination] -> weight-norm dense -> ``(N, K)`` logits;
- ToyGenerator: ``z ~ N(0, I)`` -> 2 x [dense, norm ("none", "batch" or "virtual"), ReLU] -> weight-norm dense
  -> ``(N, 2)``, no output activation.

As in the reference networks, the discriminator's dense layers are weight-normalised, so that
:func:`~improved_gan.nn.data_dependent_init` scales them to the data (hidden scales stay fixed after the init
unless ``train_hidden_scale=True``), and the generator has plain hidden layers (PyTorch's default init; no
bias before a norm, whose shift replaces it) and a weight-normalised output layer. Gaussian z (the usual choice
for these mixtures) rather than the reference code's uniform z.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from improved_gan.models._base import Discriminator, Generator, check_norm, freeze_scales, lrelu, make_norm
from improved_gan.nn import WeightNormLinear


class ToyDiscriminator(Discriminator):
    """``x (N, in_features)`` -> ``(logits (N, num_outputs), features (N, hidden))``.

    Args:
        num_outputs: K logits (1 for a GAN).
        hidden: width of the two hidden layers.
        minibatch_kernels: B (0 = no minibatch discrimination).
        minibatch_kernel_dim: C of minibatch discrimination.
        in_features: data dimension (2).
        train_hidden_scale: train the hidden weight-norm scales.
    """

    def __init__(
        self,
        num_outputs: int = 1,
        *,
        hidden: int = 128,
        minibatch_kernels: int = 0,
        minibatch_kernel_dim: int = 5,
        in_features: int = 2,
        train_hidden_scale: bool = False,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.fc1 = WeightNormLinear(in_features, hidden)
        self.fc2 = WeightNormLinear(hidden, hidden)
        if not train_hidden_scale:
            freeze_scales([self.fc1, self.fc2])
        self._build_head(
            hidden,
            num_outputs,
            minibatch_kernels=minibatch_kernels,
            minibatch_kernel_dim=minibatch_kernel_dim,
            init_scale=1.0,
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"ToyDiscriminator: expected x of shape (N, {self.in_features}), got {tuple(x.shape)}"
            )
        features = lrelu(self.fc2(lrelu(self.fc1(x))))  # (N, hidden)
        return self.head(features), features  # (N, K), (N, hidden)


class ToyGenerator(Generator):
    """``z (N, z_dim)`` -> points ``(N, out_features)``; ``z ~ N(0, I)``.

    Args:
        z_dim: noise size (16 in the ``ring8-gan`` preset).
        hidden: width of the two hidden layers.
        norm: "none", "batch" or "virtual" after each hidden layer.
        out_features: data dimension (2).
    """

    noise = "normal"

    def __init__(
        self, z_dim: int = 16, *, hidden: int = 128, norm: str = "none", out_features: int = 2
    ) -> None:
        super().__init__()
        check_norm("ToyGenerator", norm)
        if z_dim < 1:
            raise ValueError(f"ToyGenerator: z_dim must be >= 1, got {z_dim}")
        self.z_dim, self.norm = z_dim, norm
        bias = norm == "none"
        self.fc1 = nn.Linear(z_dim, hidden, bias=bias)
        self.norm1 = make_norm(hidden, norm, spatial=False)
        self.fc2 = nn.Linear(hidden, hidden, bias=bias)
        self.norm2 = make_norm(hidden, norm, spatial=False)
        self.out = WeightNormLinear(hidden, out_features)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self._check_z(z)
        h = F.relu(self.norm1(self.fc1(z)))  # (N, hidden)
        h = F.relu(self.norm2(self.fc2(h)))  # (N, hidden)
        return self.out(h)  # (N, 2)
