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

# The public names, one line each. A name listed here is looked up, on first use, in the sub-packages of
# _SUBMODULES in order, each of which lists it in its own __all__ (tests/test_public_api.py checks that every
# name resolves and to the object of the module that defines it). Static tools read the star imports below.
__all__ = [
    "__version__",
    # layers (paper §3.2, §3.5; the reference code's weight-normalised layers and noise)
    "MinibatchDiscrimination",
    "minibatch_similarity",
    "VirtualBatchNorm",
    "virtual_batch_reference",
    "WeightNormLinear",
    "WeightNormConv2d",
    "WeightNormConvTranspose2d",
    "data_dependent_init",
    "DataDependentInit",
    "GaussianNoise",
    # losses (paper §3.1, §3.4, §5)
    "feature_matching_loss",
    "discriminator_loss",
    "generator_loss_nonsaturating",
    "generator_loss_saturating",
    "semi_supervised_losses",
    "semi_supervised_generator_loss",
    "class_probabilities_kplus1",
    "d_real_probability",
    # regulariser (paper §3.3) and the reference code's Adam
    "HistoricalAveraging",
    "ReferenceAdam",
    "make_optimizer",
    # metrics (paper §4)
    "inception_score",
    "frechet_distance",
    "gaussian_statistics",
    "mode_statistics",
    "compute_metrics",
    "default_metrics",
    "available_metrics",
    "real_data_ceiling",
    # data
    "load_dataset",
    "load_toy",
    "labeled_subset",
    "EpochBatcher",
    "ImageDataset",
    "GaussianMixture2D",
    # errors
    "UserError",
    "DataError",
    "ConfigError",
    "CheckpointError",
]

# Where the names of __all__ are looked up, in this order (the cheapest imports first).
_SUBMODULES = (
    "improved_gan.errors",
    "improved_gan.nn",
    "improved_gan.losses",
    "improved_gan.regularizers",
    "improved_gan.optim",
    "improved_gan.metrics",
    "improved_gan.data",
)

if TYPE_CHECKING:  # what static tools (type checkers, IDEs) see; at run time __getattr__ imports on demand
    from improved_gan.data import *  # noqa: F403
    from improved_gan.errors import *  # noqa: F403
    from improved_gan.losses import *  # noqa: F403
    from improved_gan.metrics import *  # noqa: F403
    from improved_gan.nn import *  # noqa: F403
    from improved_gan.optim import ReferenceAdam as ReferenceAdam  # optim.py has no __all__
    from improved_gan.optim import make_optimizer as make_optimizer
    from improved_gan.regularizers import *  # noqa: F403


def _source(name: str) -> str:
    """The first module of ``_SUBMODULES`` whose ``__all__`` lists ``name`` (importing them in turn)."""
    for module in _SUBMODULES:
        mod = importlib.import_module(module)
        if name in getattr(mod, "__all__", ()) or (not hasattr(mod, "__all__") and hasattr(mod, name)):
            return module
    raise AttributeError(f"improved_gan.__all__ lists {name!r} but no sub-package exports it")  # a bug


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'improved_gan' has no attribute {name!r}")
    value = getattr(importlib.import_module(_source(name)), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
