"""Sample-quality metrics: the Inception Score formula and the Frechet distance (pure functions)."""

from improved_gan.metrics.frechet import frechet_distance, gaussian_statistics
from improved_gan.metrics.inception_score import inception_score

__all__ = ["frechet_distance", "gaussian_statistics", "inception_score"]
