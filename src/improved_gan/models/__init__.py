"""The paper's reference networks and the smaller networks of the sample-quality presets.

Every discriminator maps ``x`` to ``(logits (N, num_outputs), features (N, feature_dim))``; every generator
maps ``z (N, z_dim)`` to data and draws ``z`` with ``sample_z(n, generator=..., device=...)`` (see
:mod:`improved_gan.models._base`).

- :mod:`~improved_gan.models.mnist`: the permutation-invariant MNIST pair (paper §5);
- :mod:`~improved_gan.models.cifar`, :mod:`~improved_gan.models.svhn`: the reference conv networks;
- :mod:`~improved_gan.models.dcgan`: a small DCGAN-style pair for 28x28 / 32x32 sample-quality runs on CPU;
- :mod:`~improved_gan.models.toy`: MLPs for the 2-D mixtures.

A training configuration reaches the constructor arguments that presets and ablations vary (dropout, input and
hidden noise, output-init scale, hidden-scale training, the toy minibatch init's median) through its ``model.*``
fields; left at None they keep the defaults documented here.
"""

from improved_gan.models._base import Discriminator, Generator
from improved_gan.models.cifar import CifarDiscriminator, CifarGenerator
from improved_gan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from improved_gan.models.mnist import MnistDiscriminator, MnistGenerator
from improved_gan.models.svhn import SvhnDiscriminator, SvhnGenerator
from improved_gan.models.toy import ToyDiscriminator, ToyGenerator

__all__ = [
    "CifarDiscriminator",
    "CifarGenerator",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "Discriminator",
    "Generator",
    "MnistDiscriminator",
    "MnistGenerator",
    "SvhnDiscriminator",
    "SvhnGenerator",
    "ToyDiscriminator",
    "ToyGenerator",
]
