"""improved-gan: "Improved Techniques for Training GANs" (Salimans et al., NeurIPS 2016) in PyTorch.

Sub-packages mirror the paper: :mod:`improved_gan.nn` (minibatch discrimination, virtual batch norm and the
reference code's weight-normalised layers), :mod:`improved_gan.losses` (feature matching, label smoothing, the
K+1-class semi-supervised loss), :mod:`improved_gan.regularizers` (historical averaging),
:mod:`improved_gan.metrics` (Inception Score, Frechet distance), :mod:`improved_gan.data`,
:mod:`improved_gan.models`, :mod:`improved_gan.training` and the command line in :mod:`improved_gan.cli`.
"""

__version__ = "0.1.0"
