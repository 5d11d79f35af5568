"""The reference code's CIFAR-10 networks (paper §5), for 32x32 RGB images in [-1, 1].

Reference code: openai/improved-gan ``mnist_svhn_cifar10/train_cifar_feature_matching.py`` (FM) and
``train_cifar_minibatch_discrimination.py`` (MBD), with the layers of its ``nn.py``.

Discriminator, ``lrelu`` = leaky ReLU slope 0.2, every conv weight-normalised with data-dependent init:

=====================================================  ================  =====================================
layer                                                  output (32x32)    reference
=====================================================  ================  =====================================
input dropout 0.2 (FM) / Gaussian noise 0.2 (MBD)      (N, 3, 32, 32)    ``DropoutLayer`` / ``GaussianNoise``
2 x conv 3x3 pad 1, w1 channels, lrelu                 (N, 96, 32, 32)   w1 = 96
conv 3x3 stride 2 pad 1, lrelu; dropout 0.5            (N, 96, 16, 16)
2 x conv 3x3 pad 1, w2 channels, lrelu                 (N, 192, 16, 16)  w2 = 192
conv 3x3 stride 2 pad 1, lrelu; dropout 0.5            (N, 192, 8, 8)
conv 3x3 pad 0, lrelu                                  (N, 192, 6, 6)
2 x NIN (1x1 conv), lrelu                              (N, 192, 6, 6)
global average pool -> ``features``                    (N, 192)          FM matches this layer (``[-2]``)
[minibatch discrimination, B = 100, C = 5]             (N, 192 + 100)    MBD script only
weight-norm dense, data init std 0.1                   (N, K)            ``train_g=True, init_stdv=0.1``
=====================================================  ================  =====================================

Generator (both scripts): ``z ~ U[0, 1)^100`` -> dense 4*4*512 -> norm -> ReLU -> reshape (512, 4, 4) ->
deconv 5x5 stride 2 -> 256x8x8 -> norm -> ReLU -> deconv -> 128x16x16 -> norm -> ReLU -> weight-norm deconv ->
3x32x32 (data init std 0.1) -> tanh. "norm" is batch norm without scale plus a shift (the reference's
``batch_norm(g=None)``), per unit of the dense layer (8192 units) and per channel after the deconvolutions;
``norm="virtual"`` uses virtual batch norm there instead (paper §3.5; the paper's Inception-score runs),
``"none"`` nothing. Dense and deconv weights ~ N(0, 0.05) as in the reference. The reference's deconvolution
with ``border_mode='half'`` and stride 2 is ``ConvTranspose2d(5, stride=2, padding=2, output_padding=1)``.

As in the reference, the hidden conv layers' weight-norm scales stay fixed after their data-dependent init
(``train_g=False`` there; ``train_hidden_scale=True`` trains them). Deviation: batch norm uses running
averages in eval mode (the reference always generates with batch statistics). ``widths``, ``input_dropout``
and ``input_noise`` are options (:mod:`improved_gan.models.svhn` uses them for the SVHN networks).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from improved_gan.models._base import Discriminator, Generator, check_norm, freeze_scales, lrelu, make_norm
from improved_gan.nn import GaussianNoise, WeightNormConv2d, WeightNormConvTranspose2d

_G_WEIGHT_STD = 0.05  # reference: W=Normal(0.05)


class CifarDiscriminator(Discriminator):
    """``x (N, in_channels, H, W)``, H, W >= 9 (32 in the reference) -> ``(logits (N, K), features (N, w2))``.

    Args:
        num_outputs: K logits (10 classes; 1 for an unsupervised GAN).
        minibatch_kernels: B > 0 gives the reference's minibatch-discrimination variant (B = 100 there).
        minibatch_kernel_dim: C (reference 5).
        widths: (w1, w2), the channels of the two conv stages (reference CIFAR: 96, 192).
        input_dropout: dropout on the input; None = the reference's choice (0.2 without minibatch
            discrimination, 0 with it).
        input_noise: Gaussian noise sigma on the input; None = the reference's choice (0 without, 0.2 with).
        dropout: dropout after each stride-2 stage (reference 0.5).
        in_channels: image channels (3).
        train_hidden_scale: train the conv layers' weight-norm scales (the reference keeps them fixed).
        out_init_scale: std of the logits after the data-dependent init (reference 0.1).
    """

    def __init__(
        self,
        num_outputs: int = 10,
        *,
        minibatch_kernels: int = 0,
        minibatch_kernel_dim: int = 5,
        widths: tuple[int, int] = (96, 192),
        input_dropout: float | None = None,
        input_noise: float | None = None,
        dropout: float = 0.5,
        in_channels: int = 3,
        train_hidden_scale: bool = False,
        out_init_scale: float = 0.1,
    ) -> None:
        super().__init__()
        mbd = minibatch_kernels > 0
        input_dropout = (0.0 if mbd else 0.2) if input_dropout is None else input_dropout
        input_noise = (0.2 if mbd else 0.0) if input_noise is None else input_noise
        w1, w2 = widths
        self.in_channels = in_channels
        self.input_dropout = nn.Dropout(input_dropout)
        self.input_noise = GaussianNoise(input_noise)
        self.stage1 = nn.ModuleList(  # 32x32 -> 16x16, then dropout
            [
                WeightNormConv2d(in_channels, w1, 3, padding=1),
                WeightNormConv2d(w1, w1, 3, padding=1),
                WeightNormConv2d(w1, w1, 3, stride=2, padding=1),
            ]
        )
        self.stage2 = nn.ModuleList(  # 16x16 -> 8x8, then dropout
            [
                WeightNormConv2d(w1, w2, 3, padding=1),
                WeightNormConv2d(w2, w2, 3, padding=1),
                WeightNormConv2d(w2, w2, 3, stride=2, padding=1),
            ]
        )
        self.stage3 = nn.ModuleList(  # 8x8 -> 6x6, then two network-in-network (1x1) layers
            [WeightNormConv2d(w2, w2, 3, padding=0), WeightNormConv2d(w2, w2, 1), WeightNormConv2d(w2, w2, 1)]
        )
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)
        if not train_hidden_scale:
            freeze_scales([*self.stage1, *self.stage2, *self.stage3])
        self._build_head(
            w2,
            num_outputs,
            minibatch_kernels=minibatch_kernels,
            minibatch_kernel_dim=minibatch_kernel_dim,
            init_scale=out_init_scale,
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(N, C, H, W)`` -> ``(logits (N, num_outputs), features (N, feature_dim))``; the features are the
        layer that feature matching (paper §3.1) matches."""
        if x.dim() != 4 or x.shape[1] != self.in_channels or min(x.shape[2:]) < 9:
            raise ValueError(
                f"{type(self).__name__}: expected x of shape (N, {self.in_channels}, H, W) with H, W >= 9, "
                f"got {tuple(x.shape)}"
            )
        h = self.input_noise(self.input_dropout(x))  # (N, 3, 32, 32)
        for stage, drop in ((self.stage1, self.dropout1), (self.stage2, self.dropout2), (self.stage3, None)):
            for conv in stage:
                h = lrelu(conv(h))  # (N, w1, 32, 32) ... (N, w2, 6, 6)
            if drop is not None:
                h = drop(h)
        features = h.mean(dim=(2, 3))  # (N, w2) global average pool
        return self.head(features), features


class CifarGenerator(Generator):
    """``z (N, z_dim)`` -> images ``(N, out_channels, 32, 32)`` in [-1, 1] (tanh); ``z ~ U[0, 1)``.

    Args:
        z_dim: noise size (reference 100).
        norm: "batch" (reference), "virtual" (VBN) or "none".
        widths: channels at 4x4, 8x8 and 16x16 (reference 512, 256, 128).
        out_channels: image channels (3).
        out_init_scale: std of the output pre-activations after the data-dependent init (reference 0.1).
    """

    def __init__(
        self,
        z_dim: int = 100,
        *,
        norm: str = "batch",
        widths: tuple[int, int, int] = (512, 256, 128),
        out_channels: int = 3,
        out_init_scale: float = 0.1,
    ) -> None:
        super().__init__()
        check_norm(type(self).__name__, norm)
        if z_dim < 1:
            raise ValueError(f"{type(self).__name__}: z_dim must be >= 1, got {z_dim}")
        self.z_dim, self.norm, self.widths = z_dim, norm, tuple(widths)
        c0, c1, c2 = widths
        bias = norm == "none"
        self.fc = nn.Linear(z_dim, c0 * 4 * 4, bias=bias)
        self.norm0 = make_norm(
            c0 * 4 * 4, norm, spatial=False
        )  # per unit, as the reference's dense batch norm
        self.up1 = nn.ConvTranspose2d(c0, c1, 5, stride=2, padding=2, output_padding=1, bias=bias)
        self.norm1 = make_norm(c1, norm, spatial=True)
        self.up2 = nn.ConvTranspose2d(c1, c2, 5, stride=2, padding=2, output_padding=1, bias=bias)
        self.norm2 = make_norm(c2, norm, spatial=True)
        self.out = WeightNormConvTranspose2d(
            c2, out_channels, 5, stride=2, padding=2, output_padding=1, init_scale=out_init_scale
        )
        with torch.no_grad():
            for layer in (self.fc, self.up1, self.up2):
                layer.weight.normal_(0.0, _G_WEIGHT_STD)
                if layer.bias is not None:
                    layer.bias.zero_()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` ``(N, z_dim)`` (draw it with ``sample_z``) -> images ``(N, out_channels, 32, 32)`` in
        (-1, 1) (tanh)."""
        self._check_z(z)
        h = F.relu(self.norm0(self.fc(z)))  # (N, 512*4*4)
        h = h.reshape(z.shape[0], -1, 4, 4)  # (N, 512, 4, 4)
        h = F.relu(self.norm1(self.up1(h)))  # (N, 256, 8, 8)
        h = F.relu(self.norm2(self.up2(h)))  # (N, 128, 16, 16)
        return torch.tanh(self.out(h))  # (N, 3, 32, 32)
