"""GAN losses of "Improved Techniques for Training GANs" (Salimans et al., 2016).

Pure functions on tensors: they return scalar losses and never call ``backward()`` or step an optimizer.

=======================  =======================================
name here                paper symbol
=======================  =======================================
``real_features``        f(x), x ~ p_data (section 3.1)
``fake_features``        f(G(z)), z ~ p_z
``real_target``          alpha (one-sided smoothing, sec. 3.4)
``fake_target``          beta
``logits`` (N, K)        l_1 .. l_K (K+1-class D, section 5)
``lse``                  log Z(x) = log sum_k exp(l_k(x))
=======================  =======================================

Discriminator logits for the binary game may be ``(N,)`` or ``(N, 1)``. In the K+1-class discriminator of
section 5 the generated class has its logit fixed at 0, so D(x) = Z(x) / (Z(x) + 1) = sigmoid(lse(l(x))).
Every formula is written with ``logsumexp`` and ``softplus``, so logits of size 1e4 give finite losses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "class_probabilities_kplus1",
    "d_real_probability",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_loss_nonsaturating",
    "generator_loss_saturating",
    "semi_supervised_generator_loss",
    "semi_supervised_losses",
]

_DISTANCES = ("l2", "mse", "l1")


def _flatten_batch(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty batch of shape (N, *), got {tuple(x.shape)}")
    return x.reshape(x.shape[0], -1)  # (N, F)


def _logit_vector(logits: torch.Tensor, name: str) -> torch.Tensor:
    if logits.dim() == 2 and logits.shape[1] == 1:
        logits = logits[:, 0]
    if logits.dim() != 1 or logits.shape[0] == 0:
        raise ValueError(f"{name}: expected logits of shape (N,) or (N, 1), got {tuple(logits.shape)}")
    return logits  # (N,)


def _class_logits(logits: torch.Tensor, name: str) -> torch.Tensor:
    if logits.dim() != 2 or logits.shape[0] == 0 or logits.shape[1] == 0:
        raise ValueError(f"{name}: expected logits of shape (N, K) with N, K >= 1, got {tuple(logits.shape)}")
    return logits


def feature_matching_loss(
    real_features: torch.Tensor, fake_features: torch.Tensor, *, distance: str = "l2"
) -> torch.Tensor:
    """Feature matching, the generator objective of section 3.1.

    ``L_G = || E_{x~p_data} f(x) - E_{z~p_z} f(G(z)) ||_2^2`` with f an intermediate layer of D; the
    expectations are the batch means. The real side is detached: its statistics are constants for G.

    Args:
        real_features: ``(N_real, *)`` features of real data, flattened from dim 1 to ``(N_real, F)``.
        fake_features: ``(N_fake, *)`` features of generated data, flattened to ``(N_fake, F)``. The batch
            sizes may differ; the feature sizes F must match.
        distance: ``"l2"``: the paper's squared L2 norm (sum over the F features);
            ``"mse"``: the mean over features of the squared differences (reference MNIST code);
            ``"l1"``: the mean over features of the absolute differences (reference CIFAR-10/SVHN code).

    Returns:
        A scalar tensor.
    """
    if distance not in _DISTANCES:
        raise ValueError(f"feature_matching_loss: distance must be one of {_DISTANCES}, got {distance!r}")
    real = _flatten_batch(real_features, "real_features").detach()  # (N_real, F)
    fake = _flatten_batch(fake_features, "fake_features")  # (N_fake, F)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"feature_matching_loss: real and fake features differ in size "
            f"({tuple(real_features.shape[1:])} vs {tuple(fake_features.shape[1:])})"
        )
    diff = real.mean(dim=0) - fake.mean(dim=0)  # (F,)
    if distance == "l2":
        return diff.square().sum()
    if distance == "mse":
        return diff.square().mean()
    return diff.abs().mean()


def discriminator_loss(
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    *,
    real_target: float = 1.0,
    fake_target: float = 0.0,
) -> torch.Tensor:
    """Binary cross-entropy loss of D, with optional label smoothing (section 3.4).

    ``L_D = -mean_real[a log D(x) + (1-a) log(1-D(x))] - mean_fake[b log D(G(z)) + (1-b) log(1-D(G(z)))]``
    with ``D = sigmoid(logit)``, ``a = real_target``, ``b = fake_target``.

    One-sided label smoothing (the paper's recommendation) is ``real_target=0.9``, ``fake_target=0``.
    With targets a, b the optimal discriminator is
    ``D*(x) = (a p_data(x) + b p_model(x)) / (p_data(x) + p_model(x))``.

    Warning: two-sided smoothing (``fake_target > 0``, e.g. 0.9/0.1) is allowed but not advised: where
    p_data is 0 and p_model is not, D* = b > 0, so D rewards the generator for samples far from the data and
    G gets no signal to move them back. The reference ImageNet code uses real target 0.75 in a KL form of
    this loss (which differs from it by a constant); it is not reproduced here.

    Args:
        real_logits: ``(N_real,)`` or ``(N_real, 1)`` logits of D on real data.
        fake_logits: ``(N_fake,)`` or ``(N_fake, 1)`` logits of D on generated data.
        real_target, fake_target: targets in [0, 1].

    Returns:
        A scalar tensor: the sum of the two batch means.
    """
    for name, value in (("real_target", real_target), ("fake_target", fake_target)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"discriminator_loss: {name} must lie in [0, 1], got {value}")
    real = _logit_vector(real_logits, "real_logits")  # (N_real,)
    fake = _logit_vector(fake_logits, "fake_logits")  # (N_fake,)
    loss_real = F.binary_cross_entropy_with_logits(real, torch.full_like(real, float(real_target)))
    loss_fake = F.binary_cross_entropy_with_logits(fake, torch.full_like(fake, float(fake_target)))
    return loss_real + loss_fake


def generator_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``-E_z log D(G(z)) = E softplus(-l)`` (the usual practice).

    Args:
        fake_logits: ``(N,)`` or ``(N, 1)`` logits of D on generated data.
    """
    fake = _logit_vector(fake_logits, "fake_logits")  # (N,)
    return F.softplus(-fake).mean()


def generator_loss_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Minimax (saturating) generator loss ``E_z log(1 - D(G(z))) = -E softplus(l)``, minimised by G.

    Its gradient vanishes where D confidently rejects the samples; kept for the minimax game of section 2.

    Args:
        fake_logits: ``(N,)`` or ``(N, 1)`` logits of D on generated data.
    """
    fake = _logit_vector(fake_logits, "fake_logits")  # (N,)
    return -F.softplus(fake).mean()


def class_probabilities_kplus1(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities of the K+1-class discriminator (section 5): ``(N, K)`` logits -> ``(N, K+1)``.

    The generated class is the last column; its logit is fixed at 0, so
    ``p(y = K+1 | x) = 1 / (Z(x) + 1)`` and ``p(y = k | x) = exp(l_k) / (Z(x) + 1)``.
    """
    logits = _class_logits(logits, "logits")  # (N, K)
    zeros = logits.new_zeros(logits.shape[0], 1)  # (N, 1)
    return torch.softmax(torch.cat([logits, zeros], dim=1), dim=1)  # (N, K+1)


def d_real_probability(logits: torch.Tensor) -> torch.Tensor:
    """``D(x) = Z(x) / (Z(x) + 1) = sigmoid(lse(l(x)))``, the K+1-class D's "real" probability.

    ``(N, K)`` logits -> ``(N,)`` probabilities.
    """
    logits = _class_logits(logits, "logits")  # (N, K)
    return torch.sigmoid(torch.logsumexp(logits, dim=1))  # (N,)


def semi_supervised_losses(
    logits_labeled: torch.Tensor,
    labels: torch.Tensor,
    logits_unlabeled: torch.Tensor,
    logits_fake: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Losses of the K+1-class discriminator for semi-supervised learning (section 5).

    ``supervised = -E_{(x,y)~labeled} log p(y | x, y < K+1)``: K-way cross-entropy.
    ``unsupervised = -E_{x~data} log D(x) - E_z log(1 - D(G(z)))``
    ``             = -mean(lse(l_unl)) + mean(softplus(lse(l_unl))) + mean(softplus(lse(l_fake)))``.
    The first two terms are computed as their equal ``mean(softplus(-lse(l_unl)))``, which avoids the
    cancellation of two large numbers. The reference code multiplies ``unsupervised`` by 0.5; here it is
    not scaled: the weights belong to the configuration.

    Args:
        logits_labeled: ``(N_l, K)`` logits of labeled real data.
        labels: ``(N_l,)`` integer classes in [0, K).
        logits_unlabeled: ``(N_u, K)`` logits of unlabeled real data.
        logits_fake: ``(N_f, K)`` logits of generated data.

    Returns:
        ``(supervised, unsupervised)``, two scalar tensors.
    """
    lab = _class_logits(logits_labeled, "logits_labeled")  # (N_l, K)
    unl = _class_logits(logits_unlabeled, "logits_unlabeled")  # (N_u, K)
    fake = _class_logits(logits_fake, "logits_fake")  # (N_f, K)
    num_classes = lab.shape[1]
    if unl.shape[1] != num_classes or fake.shape[1] != num_classes:
        raise ValueError(
            f"semi_supervised_losses: class counts differ: labeled {lab.shape[1]}, "
            f"unlabeled {unl.shape[1]}, fake {fake.shape[1]}"
        )
    if labels.shape != (lab.shape[0],) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(
            f"semi_supervised_losses: labels must be integers of shape ({lab.shape[0]},), "
            f"got {labels.dtype} of shape {tuple(labels.shape)}"
        )
    supervised = F.cross_entropy(lab, labels.long())
    lse_unl = torch.logsumexp(unl, dim=1)  # (N_u,)
    lse_fake = torch.logsumexp(fake, dim=1)  # (N_f,)
    unsupervised = F.softplus(-lse_unl).mean() + F.softplus(lse_fake).mean()
    return supervised, unsupervised


def semi_supervised_generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss for the K+1-class discriminator: ``-E_z log D(G(z))``.

    With ``D = sigmoid(lse(l))`` this is ``mean(softplus(-lse(l_fake)))``. The paper's semi-supervised
    recipe trains G with feature matching instead (:func:`feature_matching_loss`); this is the alternative.

    Args:
        logits_fake: ``(N, K)`` logits of D on generated data.
    """
    fake = _class_logits(logits_fake, "logits_fake")  # (N, K)
    return F.softplus(-torch.logsumexp(fake, dim=1)).mean()
