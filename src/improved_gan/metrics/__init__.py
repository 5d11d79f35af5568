"""Sample-quality metrics (paper §4).

Pure formulas: :func:`inception_score` (on probabilities), :func:`frechet_distance`, :func:`gaussian_statistics`,
:func:`mode_statistics` (2-D mixtures). Adapters that turn samples into probabilities or features:
:mod:`.classifier` (the small Fashion-MNIST / MNIST classifier) and :mod:`.inception` (the 2015 Inception-v3 graph in
its torch-fidelity-compatible form). The registry (:func:`compute_metrics`) serves the training loop and
``improved-gan evaluate``.
"""

from improved_gan.metrics.frechet import frechet_distance, gaussian_statistics
from improved_gan.metrics.inception_score import inception_score
from improved_gan.metrics.mode_coverage import mode_statistics
from improved_gan.metrics.registry import (
    available_metrics,
    compute_metrics,
    default_metrics,
    default_num_samples,
    real_data_ceiling,
)

__all__ = [
    "available_metrics",
    "compute_metrics",
    "default_metrics",
    "default_num_samples",
    "frechet_distance",
    "gaussian_statistics",
    "inception_score",
    "mode_statistics",
    "real_data_ceiling",
]
