"""Sample-quality metrics (paper §4).

Layout (docs: API, "Metrics"):

- pure formulas: :func:`inception_score` (on probabilities), :func:`frechet_distance`, :func:`gaussian_statistics`,
  :func:`kernel_inception_distance` (KID), :func:`precision_recall` (improved precision and recall),
  :func:`bootstrap_interval` (confidence intervals of any of them), :func:`mode_statistics` (2-D mixtures);
- :mod:`.suite`: every metric declared once (name, feature space, reference, parameters, keys, meaning) and
  :func:`~improved_gan.metrics.suite.compute`, the one entry of the training loop, ``evaluate``, ``score`` and
  :func:`compute_metrics` (:mod:`.registry`, the public Python function);
- :mod:`.inputs`: the accepted sample forms (dtype, layout, value range) and their detection;
- :mod:`.features`: the one cache of the networks, batched and rank-sharded feature extraction;
- :mod:`.references`: real-data references by name and the on-disk cache of their features;
- networks: :mod:`.classifier` (the small Fashion-MNIST / MNIST classifier) and :mod:`.inception` (the 2015
  Inception-v3 graph in its torch-fidelity-compatible form).
"""

from improved_gan.metrics.bootstrap import bootstrap_interval
from improved_gan.metrics.frechet import SingularCovarianceWarning, frechet_distance, gaussian_statistics
from improved_gan.metrics.inception_score import inception_score
from improved_gan.metrics.kid import kernel_inception_distance, mmd2_unbiased, polynomial_kernel
from improved_gan.metrics.mode_coverage import mode_statistics
from improved_gan.metrics.precision_recall import knn_radii, precision_recall
from improved_gan.metrics.registry import (
    available_metrics,
    compute_metrics,
    default_metrics,
    default_num_samples,
    real_data_ceiling,
    report_keys,
)

__all__ = [
    "SingularCovarianceWarning",
    "available_metrics",
    "bootstrap_interval",
    "compute_metrics",
    "default_metrics",
    "default_num_samples",
    "frechet_distance",
    "gaussian_statistics",
    "inception_score",
    "kernel_inception_distance",
    "knn_radii",
    "mmd2_unbiased",
    "mode_statistics",
    "polynomial_kernel",
    "precision_recall",
    "real_data_ceiling",
    "report_keys",
]
