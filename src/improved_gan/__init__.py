"""improved-gan: "Improved Techniques for Training GANs" (Salimans et al., NeurIPS 2016) in PyTorch.

The parts of the paper, for a GAN of your own, import from here::

    from improved_gan import (
        MinibatchDiscrimination,  # paper §3.2, a discriminator layer
        VirtualBatchNorm, virtual_batch_reference,  # paper §3.5, generator normalisation
        feature_matching_loss,  # paper §3.1, a generator objective
        HistoricalAveraging,  # paper §3.3, a penalty for either player
        discriminator_loss,  # paper §3.4, one-sided label smoothing with real_target=0.9
        semi_supervised_losses,  # paper §5, the K+1-class discriminator
        inception_score, frechet_distance,  # paper §4, sample quality
    )

Every name in ``__all__`` is documented in the docs' API reference (``docs/api.md``). The sub-packages
hold the same objects under their own names (:mod:`improved_gan.nn`, :mod:`improved_gan.losses`,
:mod:`improved_gan.regularizers`, :mod:`improved_gan.optim`, :mod:`improved_gan.metrics`,
:mod:`improved_gan.data`) next to the reference networks (``improved_gan.models``), the training code
(``improved_gan.training``) and the command line (``improved_gan.cli``).

The names are imported on first use (PEP 562): ``import improved_gan`` itself does not import torch, so the
command line starts quickly, and ``from improved_gan import inception_score`` imports only what that needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it. One line per name; keep the TYPE_CHECKING block below in step
# (tests/test_public_api.py checks that the two agree and that every name imports).
_EXPORTS: dict[str, str] = {
    # layers (paper §3.2, §3.5; the reference code's weight-normalised layers and noise)
    "MinibatchDiscrimination": "improved_gan.nn",
    "minibatch_similarity": "improved_gan.nn",
    "VirtualBatchNorm": "improved_gan.nn",
    "virtual_batch_reference": "improved_gan.nn",
    "WeightNormLinear": "improved_gan.nn",
    "WeightNormConv2d": "improved_gan.nn",
    "WeightNormConvTranspose2d": "improved_gan.nn",
    "data_dependent_init": "improved_gan.nn",
    "DataDependentInit": "improved_gan.nn",
    "GaussianNoise": "improved_gan.nn",
    # losses (paper §3.1, §3.4, §5)
    "feature_matching_loss": "improved_gan.losses",
    "discriminator_loss": "improved_gan.losses",
    "generator_loss_nonsaturating": "improved_gan.losses",
    "generator_loss_saturating": "improved_gan.losses",
    "semi_supervised_losses": "improved_gan.losses",
    "semi_supervised_generator_loss": "improved_gan.losses",
    "class_probabilities_kplus1": "improved_gan.losses",
    "d_real_probability": "improved_gan.losses",
    # regulariser (paper §3.3) and the reference code's Adam
    "HistoricalAveraging": "improved_gan.regularizers",
    "ReferenceAdam": "improved_gan.optim",
    "make_optimizer": "improved_gan.optim",
    # metrics (paper §4)
    "inception_score": "improved_gan.metrics",
    "frechet_distance": "improved_gan.metrics",
    "gaussian_statistics": "improved_gan.metrics",
    "mode_statistics": "improved_gan.metrics",
    "compute_metrics": "improved_gan.metrics",
    "default_metrics": "improved_gan.metrics",
    "available_metrics": "improved_gan.metrics",
    "real_data_ceiling": "improved_gan.metrics",
    # data
    "load_dataset": "improved_gan.data",
    "load_toy": "improved_gan.data",
    "labeled_subset": "improved_gan.data",
    "EpochBatcher": "improved_gan.data",
    "ImageDataset": "improved_gan.data",
    "GaussianMixture2D": "improved_gan.data",
    # errors
    "UserError": "improved_gan.errors",
    "DataError": "improved_gan.errors",
    "ConfigError": "improved_gan.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # what static tools (type checkers, IDEs) see; at run time __getattr__ imports on demand
    from improved_gan.data import EpochBatcher as EpochBatcher
    from improved_gan.data import GaussianMixture2D as GaussianMixture2D
    from improved_gan.data import ImageDataset as ImageDataset
    from improved_gan.data import labeled_subset as labeled_subset
    from improved_gan.data import load_dataset as load_dataset
    from improved_gan.data import load_toy as load_toy
    from improved_gan.errors import ConfigError as ConfigError
    from improved_gan.errors import DataError as DataError
    from improved_gan.errors import UserError as UserError
    from improved_gan.losses import class_probabilities_kplus1 as class_probabilities_kplus1
    from improved_gan.losses import d_real_probability as d_real_probability
    from improved_gan.losses import discriminator_loss as discriminator_loss
    from improved_gan.losses import feature_matching_loss as feature_matching_loss
    from improved_gan.losses import generator_loss_nonsaturating as generator_loss_nonsaturating
    from improved_gan.losses import generator_loss_saturating as generator_loss_saturating
    from improved_gan.losses import semi_supervised_generator_loss as semi_supervised_generator_loss
    from improved_gan.losses import semi_supervised_losses as semi_supervised_losses
    from improved_gan.metrics import available_metrics as available_metrics
    from improved_gan.metrics import compute_metrics as compute_metrics
    from improved_gan.metrics import default_metrics as default_metrics
    from improved_gan.metrics import frechet_distance as frechet_distance
    from improved_gan.metrics import gaussian_statistics as gaussian_statistics
    from improved_gan.metrics import inception_score as inception_score
    from improved_gan.metrics import mode_statistics as mode_statistics
    from improved_gan.metrics import real_data_ceiling as real_data_ceiling
    from improved_gan.nn import DataDependentInit as DataDependentInit
    from improved_gan.nn import GaussianNoise as GaussianNoise
    from improved_gan.nn import MinibatchDiscrimination as MinibatchDiscrimination
    from improved_gan.nn import VirtualBatchNorm as VirtualBatchNorm
    from improved_gan.nn import WeightNormConv2d as WeightNormConv2d
    from improved_gan.nn import WeightNormConvTranspose2d as WeightNormConvTranspose2d
    from improved_gan.nn import WeightNormLinear as WeightNormLinear
    from improved_gan.nn import data_dependent_init as data_dependent_init
    from improved_gan.nn import minibatch_similarity as minibatch_similarity
    from improved_gan.nn import virtual_batch_reference as virtual_batch_reference
    from improved_gan.optim import ReferenceAdam as ReferenceAdam
    from improved_gan.optim import make_optimizer as make_optimizer
    from improved_gan.regularizers import HistoricalAveraging as HistoricalAveraging


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'improved_gan' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
