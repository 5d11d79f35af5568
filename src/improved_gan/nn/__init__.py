"""Layers of "Improved Techniques for Training GANs" and of its reference networks.

- :class:`MinibatchDiscrimination` (section 3.2), a discriminator layer comparing the examples of a batch;
- :class:`VirtualBatchNorm` and :func:`virtual_batch_reference` (section 3.5), for the generator;
- :class:`WeightNormLinear`, :class:`WeightNormConv2d`, :class:`WeightNormConvTranspose2d` and
  :func:`data_dependent_init` (weight normalisation, Salimans & Kingma 2016, as the reference code uses it);
- :class:`GaussianNoise`, the reference discriminators' noise layers.
"""

from improved_gan.nn.minibatch_discrimination import MinibatchDiscrimination, minibatch_similarity
from improved_gan.nn.noise import GaussianNoise
from improved_gan.nn.virtual_batchnorm import VirtualBatchNorm, virtual_batch_reference
from improved_gan.nn.weight_norm import (
    DataDependentInit,
    WeightNormConv2d,
    WeightNormConvTranspose2d,
    WeightNormLinear,
    data_dependent_init,
)

__all__ = [
    "DataDependentInit",
    "GaussianNoise",
    "MinibatchDiscrimination",
    "VirtualBatchNorm",
    "WeightNormConv2d",
    "WeightNormConvTranspose2d",
    "WeightNormLinear",
    "data_dependent_init",
    "minibatch_similarity",
    "virtual_batch_reference",
]
