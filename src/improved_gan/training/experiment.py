"""Build the networks and the objectives of a configuration: most techniques are switched on or off HERE.

:func:`build_networks` maps ``model.arch`` (and the ``model.*`` settings) to the networks of
:mod:`improved_gan.models`: minibatch discrimination, virtual batch norm, noise, dropout, init scales.
:func:`build_losses` returns the discriminator and generator objectives as closures: the K+1-class loss, label
smoothing and the generator's objective. The trainer (:mod:`improved_gan.training.trainer`) still branches on a
few properties of what was built: whether D is batch-coupled (one joint D pass or separate ones, see
:func:`is_batch_coupled`), whether G has virtual batch norm (the reference pass), whether the generator objective
is feature matching (it needs a second real batch), and ``loss.historical_averaging`` (the penalty and its
averages).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from improved_gan import losses as L
from improved_gan import models
from improved_gan.nn import MinibatchDiscrimination, VirtualBatchNorm
from improved_gan.training.config import ARCH_OPTIONS, Config


def build_networks(
    cfg: Config, *, image_shape: tuple[int, ...], num_classes: int
) -> tuple[nn.Module, nn.Module]:
    """``(generator, discriminator)`` for ``cfg``; D has ``num_classes`` logits with labels, else 1 (K+1 with K=1).

    ``model.out_init_scale`` sets the init scale of D's output layer and of G's (except the mnist generator, whose
    output layer is not data-initialised); the other ``model.*`` settings are D's."""
    m = cfg.model
    k = num_classes if cfg.loss.use_labels else 1
    mbd = dict(minibatch_kernels=m.minibatch_kernels, minibatch_kernel_dim=m.minibatch_kernel_dim)
    # the model.* settings left at None keep the architecture's own value (its constructor's default)
    opts = {name: getattr(m, name) for name in ARCH_OPTIONS[m.arch] if getattr(m, name) is not None}
    g_opts = (
        {"out_init_scale": opts["out_init_scale"]} if "out_init_scale" in opts and m.arch != "mnist" else {}
    )
    if m.arch == "mnist":  # its generator's output layer is not data-initialised: the scale is D's only
        shape = tuple(image_shape)
        g = models.MnistGenerator(
            z_dim=m.z_dim, out_shape=shape, norm=m.generator_norm, output=m.generator_output
        )
        d = models.MnistDiscriminator(num_outputs=k, **mbd, **opts)
    elif m.arch == "cifar":
        g = models.CifarGenerator(z_dim=m.z_dim, norm=m.generator_norm, **g_opts)
        d = models.CifarDiscriminator(num_outputs=k, **mbd, **opts)
    elif m.arch == "svhn":
        g = models.SvhnGenerator(z_dim=m.z_dim, norm=m.generator_norm, **g_opts)
        d = models.SvhnDiscriminator(num_outputs=k, **mbd, **opts)
    elif m.arch == "dcgan":
        out = "sigmoid" if cfg.data.dataset in ("fashion-mnist", "mnist") else "tanh"
        g = models.DCGANGenerator(
            z_dim=m.z_dim, image_shape=tuple(image_shape), norm=m.generator_norm, out_activation=out, **g_opts
        )
        d = models.DCGANDiscriminator(num_outputs=k, image_shape=tuple(image_shape), **mbd, **opts)
    elif m.arch == "toy":
        g = models.ToyGenerator(z_dim=m.z_dim, norm=m.generator_norm, **g_opts)
        d = models.ToyDiscriminator(num_outputs=k, **mbd, **opts)
    else:  # validated in config; kept for safety
        raise ValueError(f"unknown architecture {m.arch!r}")
    return g, d


def is_batch_coupled(module: nn.Module) -> bool:
    """True when an example's output depends on the other examples of its batch (then batches stay separate)."""
    coupled = (MinibatchDiscrimination, VirtualBatchNorm, nn.modules.batchnorm._BatchNorm)
    return any(isinstance(m, coupled) for m in module.modules())


def uses_vbn(module: nn.Module) -> bool:
    return any(isinstance(m, VirtualBatchNorm) for m in module.modules())


@dataclass(frozen=True)
class Objectives:
    """The two players' objectives, fixed when the experiment is built.

    ``discriminator(logits_lab, labels, logits_unl, logits_fake) -> (total, parts)`` and
    ``generator(logits_fake, feat_real_mean, feat_fake_mean) -> loss``; see :func:`build_losses`.
    """

    discriminator: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]
    generator: Callable[..., torch.Tensor]
    feature_matching: bool


def build_losses(cfg: Config) -> Objectives:
    """The K+1-class objectives (paper §5) with one-sided label smoothing (paper §3.4) and the generator's choice.

    The unsupervised part is the binary loss of ``D(x) = sigmoid(lse(l(x)))`` with the real target
    ``loss.real_target``; at target 1 it equals :func:`improved_gan.losses.semi_supervised_losses`'s
    unsupervised term, and with K = 1 logit it is the standard GAN loss.
    """
    lc = cfg.loss
    use_labels = lc.use_labels
    w_unl = lc.unsupervised_weight

    def d_objective(logits_lab, labels, logits_unl, logits_fake):
        lse_unl = torch.logsumexp(logits_unl, dim=1)  # (N,)
        lse_fake = torch.logsumexp(logits_fake, dim=1)  # (N,)
        unsup = L.discriminator_loss(lse_unl, lse_fake, real_target=lc.real_target)
        parts = {"loss_unl": unsup}
        total = w_unl * unsup
        if use_labels:
            sup = F.cross_entropy(logits_lab, labels)
            parts["loss_lab"] = sup
            total = total + sup
        return total, parts

    if lc.generator == "feature_matching":
        distance = lc.feature_distance

        def g_objective(logits_fake, real_mean, fake_mean):
            # the batch means are computed (and, under torchrun, all-reduced) by the trainer; one row each
            return L.feature_matching_loss(real_mean[None], fake_mean[None], distance=distance)

    elif lc.generator == "saturating":  # minimax: minimise E log(1 - D(G(z))), D = sigmoid(lse(l)) (paper §2)

        def g_objective(logits_fake, real_mean, fake_mean):
            return L.generator_loss_saturating(torch.logsumexp(logits_fake, dim=1))

    else:  # nonsaturating: minimise -E log D(G(z))

        def g_objective(logits_fake, real_mean, fake_mean):
            return L.semi_supervised_generator_loss(logits_fake)

    return Objectives(d_objective, g_objective, lc.generator == "feature_matching")
