"""The 2015 Inception-v3 graph (``inception-2015-12-05``) that the paper's Inception Score uses, in PyTorch.

Paper §4: the paper's numbers (CIFAR-10 real data 11.24) come from the TensorFlow graph
``classify_image_graph_def.pb`` of 2015 with 1008 output classes, scored on the logits WITHOUT the final bias.
torch-fidelity's ``inception-v3-compat`` feature extractor reproduces that graph (11.237 on CIFAR-10 train);
this module builds the same network with the same module and parameter names as torch-fidelity's
``FeatureExtractorInceptionV3``, so its converted weights file ``weights-inception-2015-12-05-6726825d.pth``
loads here with ``torch.load(weights_only=True)`` and strict key matching. We never download it.

How the 2015 graph differs from torchvision's ImageNet ``inception_v3`` (whose scores are lower: never mix
them):

- inputs are RGB in [0, 255], resized to 299x299 with TensorFlow 1.x bilinear resizing
  (``align_corners=False``, no half-pixel centres: :func:`resize_bilinear_tf1`), then mapped by
  ``(x - 128) / 128``;
- batch norm has ``eps = 0.001`` and the convolutions have no bias;
- the average-pool branches ignore the zero padding (``count_include_pad=False``), and the last block
  (``Mixed_7c``) pools its branch with a 3x3 MAX pool, not an average;
- the classifier is ``fc``: 2048 -> 1008 classes; the Inception Score uses ``pool @ fc.weight.T``, i.e. the
  logits minus ``fc.bias`` ("logits_unbiased").

Shapes: (N, 3, H, W) -> resize (N, 3, 299, 299) -> stem (N, 192, 35, 35) -> Mixed_5b..5d (N, 288, 35, 35)
-> Mixed_6a..6e (N, 768, 17, 17) -> Mixed_7a..7c (N, 2048, 8, 8) -> mean pool (N, 2048) -> (N, 1008).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = 299
NUM_CLASSES = 1008


def resize_bilinear_tf1(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TensorFlow 1.x ``resize_bilinear(align_corners=False)`` of ``x`` (N, C, H, W) to ``(N, C, *size)``.

    Output pixel i reads the source at ``i * in / out`` (no half-pixel offset; the coordinate is computed in
    float32 as TensorFlow does), interpolating between ``floor`` and ``min(floor + 1, in - 1)``; the result
    differs from ``F.interpolate(mode="bilinear")`` near the borders.
    """
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(
            f"resize_bilinear_tf1 expects a float (N, C, H, W) tensor, got {x.dtype} {tuple(x.shape)}"
        )

    def axis(n_in: int, n_out: int):
        scale = torch.tensor(n_in / n_out, dtype=torch.float32)
        src = torch.arange(n_out, dtype=torch.float32, device=x.device) * scale.to(x.device)  # (n_out,)
        lo = src.long()  # floor, since src >= 0
        hi = (lo + 1).clamp(max=n_in - 1)
        return lo, hi, (src - lo.float()).to(x.dtype)

    y0, y1, dy = axis(x.shape[2], size[0])
    x0, x1, dx = axis(x.shape[3], size[1])
    dx = dx.view(1, 1, 1, -1)  # (1, 1, 1, out_w)

    def rows(y: torch.Tensor) -> torch.Tensor:
        """Source rows ``y``, interpolated along the width: (N, C, out_h, out_w)."""
        r = x.index_select(2, y)  # (N, C, out_h, W)
        left = r.index_select(3, x0)
        return left + (r.index_select(3, x1) - left) * dx

    top = rows(y0)
    return top + (rows(y1) - top) * dy.view(1, 1, -1, 1)  # (N, C, out_h, out_w)


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 0.001), ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)  # in place: batch norm's output is a fresh tensor


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average that ignores the zero padding (TensorFlow's SAME average pool)."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _chain(x: torch.Tensor, *layers: nn.Module) -> torch.Tensor:
    for layer in layers:
        x = layer(x)
    return x


class InceptionA(nn.Module):
    """35x35 block (Mixed_5b..5d): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avg-pool-1x1 -> 224 + pool_features."""

    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(c_in, 64, 1)
        self.branch5x5_1 = BasicConv2d(c_in, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(c_in, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.branch1x1(x),
                _chain(x, self.branch5x5_1, self.branch5x5_2),
                _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
                self.branch_pool(_avg_pool(x)),
            ],
            dim=1,
        )


class InceptionB(nn.Module):
    """35 -> 17 reduction (Mixed_6a): 3x3/2 | 1x1-3x3-3x3/2 | max-pool/2 -> 480 + c_in channels."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.branch3x3(x),
                _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
                F.max_pool2d(x, 3, stride=2),
            ],
            dim=1,
        )


class InceptionC(nn.Module):
    """17x17 block (Mixed_6b..6e) with factorised 7x7 convolutions of width c7 -> 768 channels."""

    def __init__(self, c_in: int, c7: int):
        super().__init__()
        row, col = dict(kernel_size=(1, 7), padding=(0, 3)), dict(kernel_size=(7, 1), padding=(3, 0))
        self.branch1x1 = BasicConv2d(c_in, 192, 1)
        self.branch7x7_1 = BasicConv2d(c_in, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, **row)
        self.branch7x7_3 = BasicConv2d(c7, 192, **col)
        self.branch7x7dbl_1 = BasicConv2d(c_in, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, **col)
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, **row)
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, **col)
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, **row)
        self.branch_pool = BasicConv2d(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dbl = _chain(
            x,
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        )
        return torch.cat(
            [
                self.branch1x1(x),
                _chain(x, self.branch7x7_1, self.branch7x7_2, self.branch7x7_3),
                dbl,
                self.branch_pool(_avg_pool(x)),
            ],
            dim=1,
        )


class InceptionD(nn.Module):
    """17 -> 8 reduction (Mixed_7a): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | max-pool/2 -> 512 + c_in channels."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(c_in, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(c_in, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                _chain(x, self.branch3x3_1, self.branch3x3_2),
                _chain(x, self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4),
                F.max_pool2d(x, 3, stride=2),
            ],
            dim=1,
        )


class InceptionE(nn.Module):
    """8x8 block (Mixed_7b with average pool, Mixed_7c with the 2015 graph's max pool) -> 2048 channels."""

    def __init__(self, c_in: int, *, pool: str):
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(c_in, 320, 1)
        self.branch3x3_1 = BasicConv2d(c_in, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(c_in, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_1(x)  # (N, 384, 8, 8)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))  # (N, 384, 8, 8)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.pool == "max" else _avg_pool(x)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(a),
                self.branch3x3_2b(a),
                self.branch3x3dbl_3a(b),
                self.branch3x3dbl_3b(b),
                self.branch_pool(pooled),
            ],
            dim=1,
        )


class InceptionV3TF2015(nn.Module):
    """The 2015 Inception-v3 graph; ``forward`` maps RGB images in [0, 255] (N, 3, H, W) to unbiased logits.

    Parameter names equal torch-fidelity's ``FeatureExtractorInceptionV3`` state_dict keys. Weights are
    random until :func:`improved_gan.metrics.inception.load_inception_weights` fills them; it stays in eval
    mode.
    """

    def __init__(self, *, input_size: int = INPUT_SIZE):
        super().__init__()
        self.input_size = input_size  # 299 for the 2015 graph; smaller (>= 75) only to make tests fast
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, c7=128)
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(2048, NUM_CLASSES)
        # Channels-last layout (memory order N, H, W, C) for the convolution weights and the activations: the
        # CPU convolutions (oneDNN) run it without reordering each layer's input, about a quarter faster on one
        # thread; the values agree with the default layout to float32 rounding (summation order only).
        self.to(memory_format=torch.channels_last)
        self.eval()

    def pool_features(self, images: torch.Tensor) -> torch.Tensor:
        """RGB ``images`` (N, 3, H, W) in [0, 255] (float or uint8) -> pool3 features (N, 2048)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"Inception-v3 expects RGB images (N, 3, H, W), got {tuple(images.shape)}")
        dtype = self.fc.weight.dtype  # float32; float64 after .double() (an accuracy reference)
        x = resize_bilinear_tf1(images.to(dtype), (self.input_size,) * 2)  # (N, 3, 299, 299)
        x = ((x - 128) / 128).contiguous(memory_format=torch.channels_last)  # see __init__
        x = _chain(x, self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3)  # (N, 64, 147, 147)
        x = F.max_pool2d(x, 3, stride=2)  # (N, 64, 73, 73)
        x = _chain(x, self.Conv2d_3b_1x1, self.Conv2d_4a_3x3)  # (N, 192, 71, 71)
        x = F.max_pool2d(x, 3, stride=2)  # (N, 192, 35, 35)
        x = _chain(x, self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a)  # (N, 768, 17, 17)
        x = _chain(x, self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e)  # (N, 768, 17, 17)
        x = _chain(x, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c)  # (N, 2048, 8, 8)
        return x.mean(dim=(2, 3))  # (N, 2048)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """RGB ``images`` (N, 3, H, W) in [0, 255] -> logits without the final bias (N, 1008)."""
        return self.pool_features(images) @ self.fc.weight.T  # (N, 1008)
