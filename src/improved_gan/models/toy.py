"""Small MLPs for the 2-D Gaussian mixtures (:mod:`improved_gan.data.toy`), where mode collapse is measurable.

The paper has no toy experiment; these follow the later mode-collapse literature (Unrolled GANs, Metz et al.
2017: two hidden layers of 128 units) with the reference code's building blocks, so that the techniques of
section 3 apply unchanged:

- ToyDiscriminator: ``x (N, 2)`` -> 2 x [weight-norm dense, leaky ReLU 0.2] -> ``features`` ->
  [minibatch discrimination] -> weight-norm dense -> ``(N, K)`` logits;
- ToyGenerator: ``z ~ N(0, I)`` -> 2 x [dense, norm ("none", "batch" or "virtual"), ReLU] -> weight-norm dense
  -> ``(N, 2)``, no output activation.

As in the reference networks, the discriminator's dense layers are weight-normalised, so that
:func:`~improved_gan.nn.data_dependent_init` scales them to the data, and the generator has plain hidden layers
(PyTorch's default init; no bias before a norm, whose shift replaces it) and a weight-normalised output layer.
Gaussian z (the usual choice for these mixtures) rather than the reference code's uniform z.

Deviations from the reference building blocks, each measured on ``ring8-gan`` (all techniques, seeds 1-3):

- minibatch discrimination (section 3.2) is initialised by the *median* pairwise distance, not the nearest
  neighbour's (:class:`~improved_gan.models.toy.MedianInitMinibatch`). The reference init scales each kernel so that the batch mean of
  the nearest-neighbour L1 distance ``min_j ||M_i - M_j||_1`` is 2, which suits images (no two alike). In a
  mixture of tight modes every real example has near-duplicates (its mode's other samples, std 0.02 on a ring of
  radius 2), so that init makes the kernels as narrow as one mode: real examples then have many neighbours
  (o ~ 13 in a batch of 128) and the still diffuse generated ones none (o ~ 0), D separates the two by o
  alone (D(G(z)) ~ 0.04 after 50 steps) and the generator, whose gradient through o vanishes at those
  distances, stays a diffuse cloud (high-quality fraction < 0.01 after 3000 steps). Scaling the kernels so that
  the median pairwise distance of the init batch is ``minibatch_median`` (1; the "median heuristic" of kernel
  methods) makes o a smooth measure of the batch's spread and the run reach 8/8 modes;
- the hidden weight-norm scales are trained (``train_hidden_scale=True``; the reference freezes them after the
  init, when the first layer's weights get the norm that suits data of spread ~2, coarse next to modes of std
  0.02). With the final ``ring8-gan`` preset, seeds 1-3: trained, 8/8/8 modes and high-quality fractions
  0.83/0.86/0.83; frozen, 8/8/7 modes and 0.83/0.86/0.85 (thin evidence: one lost mode);
- the generator's hidden layers have 64 units (the discriminator keeps 128): with 5 minibatch kernels and 128
  units the high-quality fraction after 4000 steps was 0.78-0.81 over seeds 1-3, with 64 units 0.82-0.84.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from improved_gan.models._base import Discriminator, Generator, check_norm, freeze_scales, lrelu, make_norm
from improved_gan.nn import MinibatchDiscrimination, WeightNormLinear


class MedianInitMinibatch(MinibatchDiscrimination):
    """:class:`~improved_gan.nn.MinibatchDiscrimination` whose data-dependent init uses the median distance.

    Same layer, parameters and forward; only :meth:`init_from_batch` differs (see the module docstring): each
    kernel b is scaled so that the median over pairs i < j of ``||M_{i,b} - M_{j,b}||_1`` on the init batch is
    ``median``, then the bias is set so that ``o + bias`` has batch mean 0 there (as the reference).

    Args:
        in_features, num_kernels, kernel_dim: as :class:`~improved_gan.nn.MinibatchDiscrimination`.
        median: the target median pairwise L1 distance of each kernel (> 0).
    """

    def __init__(
        self, in_features: int, num_kernels: int, kernel_dim: int = 5, *, median: float = 1.0
    ) -> None:
        super().__init__(in_features, num_kernels, kernel_dim)
        if not median > 0:
            raise ValueError(f"MedianInitMinibatch: median must be positive, got {median}")
        self.median = float(median)

    def init_from_batch(self, x: torch.Tensor) -> None:
        x, M = self._features(x)  # (N, A), (N, B, C)
        n = x.shape[0]
        if n < 2:
            raise ValueError("MedianInitMinibatch: data-dependent init needs at least 2 examples")
        X = M.transpose(0, 1).contiguous()  # (B, N, C)
        i, j = torch.triu_indices(n, n, offset=1, device=X.device)  # (2, N(N-1)/2)
        pairs = torch.cdist(X, X, p=1)[:, i, j]  # (B, N(N-1)/2)
        med = pairs.median(dim=1).values  # (B,)
        # a kernel whose rows are all equal (median 0) keeps its scale
        factor = torch.where(med > 0, self.median / med, torch.ones_like(med))  # (B,)
        if self.log_scale is None:
            self.theta.mul_(factor[None, :, None])
        else:
            self.log_scale.add_(factor.log()[:, None])
        self._center_bias(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, median={self.median}"


class ToyDiscriminator(Discriminator):
    """``x (N, in_features)`` -> ``(logits (N, num_outputs), features (N, hidden))``.

    Args:
        num_outputs: K logits (1 for a GAN).
        hidden: width of the two hidden layers.
        minibatch_kernels: B (0 = no minibatch discrimination).
        minibatch_kernel_dim: C of minibatch discrimination.
        minibatch_median: the median pairwise kernel distance its init aims at (:class:`~improved_gan.models.toy.MedianInitMinibatch`).
        in_features: data dimension (2).
        train_hidden_scale: train the hidden weight-norm scales (default True, unlike the reference code).
        out_init_scale: std of the logits after the data-dependent init.
    """

    def __init__(
        self,
        num_outputs: int = 1,
        *,
        hidden: int = 128,
        minibatch_kernels: int = 0,
        minibatch_kernel_dim: int = 5,
        minibatch_median: float = 1.0,
        in_features: int = 2,
        train_hidden_scale: bool = True,
        out_init_scale: float = 1.0,
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
            init_scale=out_init_scale,
        )
        if self.minibatch is not None:  # same shapes, the toy init (module docstring)
            self.minibatch = MedianInitMinibatch(
                hidden, minibatch_kernels, minibatch_kernel_dim, median=minibatch_median
            )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(N, 2)`` points -> ``(logits (N, num_outputs), features (N, feature_dim))``; the features are the
        layer that feature matching (paper §3.1) matches."""
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
        hidden: width of the two hidden layers (64; see the module docstring).
        norm: "none", "batch" or "virtual" after each hidden layer.
        out_features: data dimension (2).
        out_init_scale: std of the output after the data-dependent init.
    """

    noise = "normal"

    def __init__(
        self,
        z_dim: int = 16,
        *,
        hidden: int = 64,
        norm: str = "none",
        out_features: int = 2,
        out_init_scale: float = 1.0,
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
        self.out = WeightNormLinear(hidden, out_features, init_scale=out_init_scale)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` ``(N, z_dim)`` (draw it with ``sample_z``) -> points ``(N, 2)``."""
        self._check_z(z)
        h = F.relu(self.norm1(self.fc1(z)))  # (N, hidden)
        h = F.relu(self.norm2(self.fc2(h)))  # (N, hidden)
        return self.out(h)  # (N, 2)
