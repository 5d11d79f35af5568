"""The paper's permutation-invariant MNIST networks (paper §5), for any 28x28 single-channel data.

Reference code: openai/improved-gan ``mnist_svhn_cifar10/train_mnist_feature_matching.py`` with the layers of
its ``nn.py`` (``DenseLayer``, ``GaussianNoiseLayer``, ``batch_norm``, ``l2normalize``).

Discriminator (``x`` flattened to 784):

=============================  ============================  ==========================================
layer                          output                        reference
=============================  ============================  ==========================================
Gaussian noise sigma 0.3       (N, 784)                      ``GaussianNoiseLayer(sigma=0.3)``
5 x [weight-norm dense, ReLU,  (N, 1000), (N, 500),          ``nn.DenseLayer`` (weight-normalised,
Gaussian noise sigma 0.5]      (N, 250) x 3                  data-dependent init), noise 0.5
[minibatch discrimination]     (N, 250 + B)                  not in the MNIST script (optional here)
weight-norm dense              (N, K) logits                 ``DenseLayer(10, train_scale=True)``
=============================  ============================  ==========================================

``features`` is the ReLU output of the last hidden layer, before its noise (the reference's ``layers[-3]``).

Generator: ``z ~ U[0, 1)^100`` -> dense 500 -> batch norm without scale (the reference's ``g=None``) + shift
-> softplus -> dense 500 -> batch norm + shift -> softplus -> weight-norm dense 784 -> sigmoid, reshaped to
``out_shape``.

As in the reference code, the hidden layers' weight-norm scales ``g`` stay fixed after the data-dependent init
(``train_scale=False`` there; ``train_hidden_scale=True`` trains them) and directions start at N(0, 0.1).
Deviations from the reference code:

- none in the generator's output layer: it is the reference's ``l2normalize`` (weight normalisation with a
  trained scale that starts at 1, bias 0), which the data-dependent init leaves alone
  (:class:`~improved_gan.models.mnist.L2NormalizedLinear`). Initialising it from data like the other layers (mean 0, std 1 on the init
  batch) gave g ~ 1.9 and per-pixel biases of std 1.6 on Fashion-MNIST: the generator then saturated into
  identical binary speckle within 200 steps and D separated real from fake completely;
- the generator's batch norm uses running averages in eval mode (PyTorch's convention); the reference always
  generates with batch statistics. ``norm="virtual"`` (VBN) and ``"none"`` are options, not in the reference.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from improved_gan.models._base import Discriminator, Generator, check_norm, freeze_scales, make_norm
from improved_gan.nn import GaussianNoise, WeightNormLinear

_MNIST_V_STD = 0.1  # reference nn.DenseLayer: theta ~ N(0, 0.1)


class MnistDiscriminator(Discriminator):
    """``x (N, 1, 28, 28)`` or ``(N, 784)`` -> ``(logits (N, num_outputs), features (N, hidden[-1]))``.

    Args:
        num_outputs: K, the number of logits (10 classes; 1 for an unsupervised GAN).
        input_noise: sigma of the Gaussian noise on the input (reference 0.3); active in training mode only.
        hidden_noise: sigma after each hidden layer (reference 0.5).
        hidden: hidden layer widths (reference 1000-500-250-250-250).
        minibatch_kernels: B > 0 adds minibatch discrimination before the last layer.
        minibatch_kernel_dim: C of minibatch discrimination.
        in_features: the input size (784 = 28 * 28).
        train_hidden_scale: train the hidden layers' weight-norm scales (the reference code keeps them fixed).
        out_init_scale: std of the logits after the data-dependent init (reference 1).
    """

    def __init__(
        self,
        num_outputs: int = 10,
        *,
        input_noise: float = 0.3,
        hidden_noise: float = 0.5,
        hidden: tuple[int, ...] = (1000, 500, 250, 250, 250),
        minibatch_kernels: int = 0,
        minibatch_kernel_dim: int = 5,
        in_features: int = 784,
        train_hidden_scale: bool = False,
        out_init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("MnistDiscriminator: hidden must name at least one layer width")
        self.in_features = in_features
        self.input_noise = GaussianNoise(input_noise)
        widths = (in_features, *hidden)
        self.hidden = nn.ModuleList(WeightNormLinear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.noise = nn.ModuleList(GaussianNoise(hidden_noise) for _ in hidden)
        if not train_hidden_scale:
            freeze_scales(list(self.hidden))
        self._build_head(
            hidden[-1],
            num_outputs,
            minibatch_kernels=minibatch_kernels,
            minibatch_kernel_dim=minibatch_kernel_dim,
            init_scale=out_init_scale,
        )
        with torch.no_grad():
            for layer in [*self.hidden, self.out]:
                layer.v.normal_(0.0, _MNIST_V_STD)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(N, 784)`` or ``(N, 1, 28, 28)`` -> ``(logits (N, num_outputs), features (N, feature_dim))``; the features are the
        layer that feature matching (paper §3.1) matches."""
        if x.dim() < 2 or math.prod(x.shape[1:]) != self.in_features:
            raise ValueError(
                f"MnistDiscriminator: expected x of shape (N, {self.in_features}) or (N, 1, 28, 28), "
                f"got {tuple(x.shape)}"
            )
        h = self.input_noise(x.flatten(1))  # (N, 784)
        features = h
        for layer, noise in zip(self.hidden, self.noise):
            features = F.relu(layer(h))  # (N, H_l)
            h = noise(features)
        return self.head(h), features  # (N, K), (N, H_last)


class L2NormalizedLinear(WeightNormLinear):
    """The reference code's ``l2normalize(DenseLayer)``: ``y = x (g v/||v||)^T + bias`` with g = 1, bias = 0 at
    the start; :func:`~improved_gan.nn.data_dependent_init` marks it initialised and changes nothing."""

    def init_from_batch(self, x: torch.Tensor) -> None:
        del x  # not data-initialised in the reference code


class MnistGenerator(Generator):
    """``z (N, z_dim)`` -> images ``(N, *out_shape)`` in [0, 1] (sigmoid). ``z ~ U[0, 1)`` (reference).

    Args:
        z_dim: noise size (reference 100).
        hidden: widths of the dense layers (reference 500-500).
        out_shape: output image shape; its product is the output layer's width (784).
        norm: "batch" (reference), "virtual" (VBN, paper §3.5) or "none".
        output: "sigmoid" (reference: images in (0, 1)) or "softplus" (images in (0, inf), as the PyTorch port
            Sleepychord/ImprovedGAN-pytorch; near-binary digits are reached without saturating a sigmoid).
    """

    def __init__(
        self,
        z_dim: int = 100,
        *,
        hidden: tuple[int, ...] = (500, 500),
        out_shape: tuple[int, ...] = (1, 28, 28),
        norm: str = "batch",
        output: str = "sigmoid",
    ) -> None:
        super().__init__()
        check_norm("MnistGenerator", norm)
        if output not in ("sigmoid", "softplus"):
            raise ValueError(f"MnistGenerator: output must be 'sigmoid' or 'softplus', got {output!r}")
        self.output = output
        if z_dim < 1 or not hidden:
            raise ValueError(f"MnistGenerator: need z_dim >= 1 and a hidden layer, got {z_dim}, {hidden}")
        self.z_dim, self.out_shape, self.norm = z_dim, tuple(out_shape), norm
        widths = (z_dim, *hidden)
        self.dense = nn.ModuleList(
            nn.Linear(a, b, bias=norm == "none") for a, b in zip(widths[:-1], widths[1:])
        )
        self.norms = nn.ModuleList(make_norm(b, norm, spatial=False) for b in hidden)
        self.out = L2NormalizedLinear(hidden[-1], math.prod(self.out_shape))
        with torch.no_grad():  # lasagne's default DenseLayer init, GlorotUniform (direction only for `out`)
            for layer in self.dense:
                nn.init.xavier_uniform_(layer.weight)
                if layer.bias is not None:
                    layer.bias.zero_()
            nn.init.xavier_uniform_(self.out.v)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` ``(N, z_dim)`` (draw it with ``sample_z``) -> images ``(N, 1, 28, 28)`` in (0, 1) (sigmoid)."""
        self._check_z(z)
        h = z
        for dense, norm in zip(self.dense, self.norms):
            h = F.softplus(norm(dense(h)))  # (N, H_l)
        t = self.out(h)  # (N, 784)
        x = torch.sigmoid(t) if self.output == "sigmoid" else F.softplus(t)
        return x.reshape(z.shape[0], *self.out_shape)  # (N, 1, 28, 28)
