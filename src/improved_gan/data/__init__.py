"""Data: readers for the published formats, the registry by name, toy mixtures, labeled subsets and batching.

- :mod:`~improved_gan.data.idx`: MNIST / Fashion-MNIST / KMNIST IDX files (``.gz`` or raw).
- :mod:`~improved_gan.data.cifar`: CIFAR-10 binary and Python versions (pickles via a restricted unpickler).
- :mod:`~improved_gan.data.svhn`: SVHN ``*_32x32.mat``.
- :mod:`~improved_gan.data.toy`: 2-D Gaussian mixtures ``ring8`` and ``grid25``.
- :mod:`~improved_gan.data.registry`: :func:`load_dataset` by name, data location rules, preprocessing.
- :mod:`~improved_gan.data.sampling`: :func:`labeled_subset` and :class:`EpochBatcher`.

Nothing here downloads anything; every malformed or missing input raises :class:`DataError`.
"""

from improved_gan.data.registry import (
    DATASET_ALIASES,
    DATASETS,
    ENV_VAR,
    IMAGE_DATASETS,
    SYSTEM_LOCATIONS,
    ImageDataset,
    canonical_dataset_name,
    is_toy,
    load_dataset,
    normalize,
    resolve_data_folder,
    to_unit,
)
from improved_gan.data.sampling import EpochBatcher, epoch_seed, labeled_subset
from improved_gan.data.toy import GaussianMixture2D, load_toy
from improved_gan.errors import DataError

__all__ = [
    "DATASET_ALIASES",
    "DATASETS",
    "ENV_VAR",
    "IMAGE_DATASETS",
    "SYSTEM_LOCATIONS",
    "DataError",
    "EpochBatcher",
    "GaussianMixture2D",
    "ImageDataset",
    "canonical_dataset_name",
    "epoch_seed",
    "is_toy",
    "labeled_subset",
    "load_dataset",
    "load_toy",
    "normalize",
    "resolve_data_folder",
    "to_unit",
]
