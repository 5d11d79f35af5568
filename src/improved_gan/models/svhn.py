"""The reference code's SVHN networks (paper section 5): the CIFAR-10 networks with other arguments.

Reference code: openai/improved-gan ``mnist_svhn_cifar10/train_svhn_feature_matching.py`` and
``train_svhn_minibatch_discrimination.py``. Compared with :mod:`improved_gan.models.cifar`:

- the feature-matching discriminator is narrower: conv widths 64 and 128 instead of 96 and 192 (input dropout
  0.2, dropout 0.5, the same layer sequence); ``features`` are its 128 global-pool features;
- the minibatch-discrimination discriminator is exactly CIFAR's (96/192, input Gaussian noise 0.2, B = 100);
- the generator is exactly CIFAR's (z ~ U[0, 1)^100, 4x4x512 -> 8 -> 16 -> 32, tanh).

Images are 32x32 RGB scaled to [-1, 1] (the reference's ``(x - 127.5) / 127.5``).
"""

from __future__ import annotations

from improved_gan.models.cifar import CifarDiscriminator, CifarGenerator


class SvhnDiscriminator(CifarDiscriminator):
    """:class:`CifarDiscriminator` with the SVHN scripts' widths: (64, 128) without minibatch discrimination,
    (96, 192) with it, unless ``widths`` is given. Other arguments as :class:`CifarDiscriminator`."""

    def __init__(
        self,
        num_outputs: int = 10,
        *,
        minibatch_kernels: int = 0,
        widths: tuple[int, int] | None = None,
        **kwargs,
    ) -> None:
        if widths is None:
            widths = (96, 192) if minibatch_kernels > 0 else (64, 128)
        super().__init__(num_outputs, minibatch_kernels=minibatch_kernels, widths=widths, **kwargs)


class SvhnGenerator(CifarGenerator):
    """The SVHN scripts' generator: identical to :class:`CifarGenerator` (same arguments)."""
