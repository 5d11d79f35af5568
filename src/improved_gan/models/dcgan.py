"""A small DCGAN-style pair for the sample-quality presets (the techniques of paper section 3, on CPU).

The paper's sample-quality model (CIFAR-10, Table 3) is the reference code's CIFAR network with minibatch
discrimination (:mod:`improved_gan.models.cifar`). This module is a smaller network of the same design that
trains on 2 CPU cores: 28x28 grey-scale (Fashion-MNIST) or 32x32 RGB images, any H, W divisible by 4.

Generator (``norm`` after the dense layer and after the first deconvolution; "virtual" = VBN, paper §3.5):

=====================================================  ==================
layer                                                  output
=====================================================  ==================
z ~ U[0, 1)^z_dim (as the reference code)              (N, z_dim)
dense, norm per unit (as the reference's CIFAR G),     (N, c0, H/4, W/4)
ReLU, reshape
deconv 4x4 stride 2 pad 1, norm per channel, ReLU      (N, c1, H/2, W/2)
weight-norm deconv 4x4 stride 2 pad 1 (init std 1)     (N, C, H, W)
sigmoid ([0, 1] data) or tanh ([-1, 1] data)
=====================================================  ==================

Discriminator (weight-normalised layers with data-dependent init, leaky ReLU 0.2, as the reference code):

=====================================================  ==================
layer                                                  output
=====================================================  ==================
Gaussian noise on the input, sigma 0.2 (reference)     (N, C, H, W)
conv 4x4 stride 2 pad 1, lrelu                         (N, d0, H/2, W/2)
conv 4x4 stride 2 pad 1, lrelu [dropout, off]          (N, d1, H/4, W/4)
dense, lrelu -> ``features``                           (N, hidden)
[minibatch discrimination, B kernels of size C]        (N, hidden + B)
weight-norm dense (init std 1)                         (N, K)
=====================================================  ==================

Widths: G (64, 32), D (32, 64), hidden 256 by default, chosen for speed: one discriminator step (real and fake
batches) plus one generator step at batch 64, 28x28, with a VBN reference pass before each and 50 minibatch
kernels, costs 0.12 s of single-thread CPU time (0.16 s at 32x32x3); doubling every width costs 0.32 s.
The output layers' data-dependent init gives pre-activations of std 1, not the reference CIFAR networks' 0.1
(``out_init_scale``): on fmnist-gan at 1000 steps (lr 0.002, one seed) the classifier score was 2.63 with the
per-channel norm after the dense layer and both scales at 1, 4.65 with the per-unit norm and both at 1, 5.47
adding the input noise 0.2, against 2.90 for per-channel norm and both scales 0.1 (lr 0.001).
Deviations from DCGAN (Radford et al., 2016): the norms have a learned shift but no learned scale (the
reference code's ``g=None``); D uses weight normalisation, not batch norm (batch norm in D would couple the
examples of a batch, which the K+1-class loss and separate real/fake batches do not want); hidden weight-norm
scales are fixed after the init (as the reference) unless ``train_hidden_scale=True``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from improved_gan.models._base import Discriminator, Generator, check_norm, freeze_scales, lrelu, make_norm
from improved_gan.nn import GaussianNoise, WeightNormConv2d, WeightNormConvTranspose2d, WeightNormLinear

_G_WEIGHT_STD = 0.05  # as the reference code's generators


def _check_image_shape(owner: str, image_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(image_shape) != 3 or image_shape[1] % 4 or image_shape[2] % 4 or min(image_shape) < 1:
        raise ValueError(
            f"{owner}: image_shape must be (C, H, W) with H, W divisible by 4, got {image_shape}"
        )
    c, h, w = image_shape
    return c, h, w


class DCGANDiscriminator(Discriminator):
    """``x (N, *image_shape)`` -> ``(logits (N, num_outputs), features (N, hidden))``.

    Args:
        num_outputs: K logits (1 for an unsupervised GAN; the number of classes for the K+1-class one).
        image_shape: (C, H, W), H and W divisible by 4.
        minibatch_kernels: B (0 = no minibatch discrimination).
        minibatch_kernel_dim: C of minibatch discrimination.
        channels: (d0, d1) of the two strided convolutions.
        hidden: width of the dense feature layer.
        input_noise: Gaussian noise sigma on the input (training mode only; the reference's minibatch
            discrimination networks use 0.2).
        dropout: dropout before the dense layer.
        train_hidden_scale: train the hidden weight-norm scales.
        out_init_scale: std of the logits after the data-dependent init (reference CIFAR: 0.1).
    """

    def __init__(
        self,
        num_outputs: int = 1,
        *,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        minibatch_kernels: int = 100,
        minibatch_kernel_dim: int = 5,
        channels: tuple[int, int] = (32, 64),
        hidden: int = 256,
        input_noise: float = 0.2,
        dropout: float = 0.0,
        train_hidden_scale: bool = False,
        out_init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        c, h, w = _check_image_shape("DCGANDiscriminator", tuple(image_shape))
        self.image_shape = (c, h, w)
        d0, d1 = channels
        self.input_noise = GaussianNoise(input_noise)
        self.conv1 = WeightNormConv2d(c, d0, 4, stride=2, padding=1)
        self.conv2 = WeightNormConv2d(d0, d1, 4, stride=2, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.dense = WeightNormLinear(d1 * (h // 4) * (w // 4), hidden)
        if not train_hidden_scale:
            freeze_scales([self.conv1, self.conv2, self.dense])
        self._build_head(
            hidden,
            num_outputs,
            minibatch_kernels=minibatch_kernels,
            minibatch_kernel_dim=minibatch_kernel_dim,
            init_scale=out_init_scale,
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(N, *image_shape)`` -> ``(logits (N, num_outputs), features (N, feature_dim))``; the features are the
        layer that feature matching (paper §3.1) matches."""
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"DCGANDiscriminator: expected x of shape (N, *{self.image_shape}), got {tuple(x.shape)}"
            )
        h = self.input_noise(x)  # (N, C, H, W)
        h = lrelu(self.conv1(h))  # (N, d0, H/2, W/2)
        h = self.dropout(lrelu(self.conv2(h)))  # (N, d1, H/4, W/4)
        features = lrelu(self.dense(h.flatten(1)))  # (N, hidden)
        return self.head(features), features  # (N, K), (N, hidden)


class DCGANGenerator(Generator):
    """``z (N, z_dim)`` -> images ``(N, *image_shape)``; ``z ~ U[0, 1)``.

    Args:
        z_dim: noise size.
        image_shape: (C, H, W), H and W divisible by 4.
        norm: "virtual" (VBN over a reference batch, the paper's sample-quality setting), "batch" (the -VBN+BN
            ablation) or "none".
        out_activation: "sigmoid" for data in [0, 1], "tanh" for data in [-1, 1].
        channels: (c0, c1), the channels at H/4 and H/2.
        out_init_scale: std of the output pre-activations after the data-dependent init (reference CIFAR: 0.1).
    """

    def __init__(
        self,
        z_dim: int = 100,
        *,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        norm: str = "virtual",
        out_activation: str = "sigmoid",
        channels: tuple[int, int] = (64, 32),
        out_init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        check_norm("DCGANGenerator", norm)
        if out_activation not in ("sigmoid", "tanh"):
            raise ValueError(
                f"DCGANGenerator: out_activation must be 'sigmoid' or 'tanh', got {out_activation!r}"
            )
        if z_dim < 1:
            raise ValueError(f"DCGANGenerator: z_dim must be >= 1, got {z_dim}")
        c, h, w = _check_image_shape("DCGANGenerator", tuple(image_shape))
        self.z_dim, self.image_shape, self.norm, self.out_activation = z_dim, (c, h, w), norm, out_activation
        c0, c1 = channels
        bias = norm == "none"
        self.fc = nn.Linear(z_dim, c0 * (h // 4) * (w // 4), bias=bias)
        self.norm0 = make_norm(c0 * (h // 4) * (w // 4), norm, spatial=False)  # per unit
        self.up1 = nn.ConvTranspose2d(c0, c1, 4, stride=2, padding=1, bias=bias)
        self.norm1 = make_norm(c1, norm, spatial=True)
        self.out = WeightNormConvTranspose2d(c1, c, 4, stride=2, padding=1, init_scale=out_init_scale)
        with torch.no_grad():
            for layer in (self.fc, self.up1):
                layer.weight.normal_(0.0, _G_WEIGHT_STD)
                if layer.bias is not None:
                    layer.bias.zero_()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` ``(N, z_dim)`` (draw it with ``sample_z``) -> images ``(N, *image_shape)`` in the range of
        ``out_activation`` (sigmoid: (0, 1); tanh: (-1, 1))."""
        self._check_z(z)
        _, h, w = self.image_shape
        x = F.relu(self.norm0(self.fc(z)))  # (N, c0 * H/4 * W/4)
        x = x.reshape(z.shape[0], -1, h // 4, w // 4)  # (N, c0, H/4, W/4)
        x = F.relu(self.norm1(self.up1(x)))  # (N, c1, H/2, W/2)
        x = self.out(x)  # (N, C, H, W)
        return torch.sigmoid(x) if self.out_activation == "sigmoid" else torch.tanh(x)
