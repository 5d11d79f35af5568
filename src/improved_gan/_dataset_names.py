"""Data-set names and the aliases users type, in one place for every entry point (no torch import here).

:func:`canonical_dataset_name` is re-exported by :mod:`improved_gan.data` and used by the data registry, the
metric registry and the configuration, so ``fmnist``, ``fashion_mnist`` and ``fashion-mnist`` mean the same
everywhere.
"""

from __future__ import annotations

from improved_gan.errors import ConfigError

IMAGE_DATASETS = ("fashion-mnist", "mnist", "cifar10", "svhn")
TOY_DATASET_NAMES = ("ring8", "grid25")
DATASETS = IMAGE_DATASETS + TOY_DATASET_NAMES

#: Other spellings users type -> the canonical name (the presets are named ``fmnist-*``).
DATASET_ALIASES = {
    "fmnist": "fashion-mnist",
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
}


def accepted_names() -> str:
    """The data-set names every entry point accepts, for error messages: canonical names, then aliases."""
    return f"{', '.join(DATASETS)} (aliases: {', '.join(DATASET_ALIASES)})"


def canonical_dataset_name(name: str) -> str:
    """The canonical name of data set ``name``: ``"fmnist"``, ``"Fashion_MNIST"`` -> ``"fashion-mnist"``.

    Raises :class:`~improved_gan.errors.ConfigError` (a :class:`~improved_gan.errors.UserError`) naming
    every accepted name if ``name`` is none of them.
    """
    key = str(name).strip().lower()
    key = DATASET_ALIASES.get(key, key)
    if key not in DATASETS:
        raise ConfigError(f"unknown data set {name!r} (expected one of {accepted_names()})")
    return key
