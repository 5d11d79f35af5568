"""Data sets by name, where to find their files, and the preprocessing of each recipe.

Names (``DATASETS``): the image sets ``fashion-mnist``, ``mnist``, ``cifar10``, ``svhn`` (loaded by
:func:`~improved_gan.data.load_dataset`) and the 2-D toy mixtures ``ring8``, ``grid25`` (loaded by
:func:`~improved_gan.data.load_toy`). Every function that takes a data-set name also accepts the
aliases in ``DATASET_ALIASES`` (``fmnist``, ``fashion_mnist``, ``fashionmnist``, ``cifar-10``, ...), in
any case; :func:`~improved_gan.data.canonical_dataset_name` maps them to these names.

Where the files are looked for, first rule that applies:

1. the ``data_dir`` argument (the CLI's ``--data-dir``);
2. the environment variable ``IMPROVED_GAN_DATA``;
3. the standard location of a data set installed by a system package: Fashion-MNIST from Debian's
   ``dataset-fashion-mnist`` in ``/usr/share/datasets/fashion-mnist``. The other sets have no system package.

Inside that folder the files may lie directly, or in a sub-folder named after the data set:
``fashion-mnist/``, ``mnist/``, ``cifar-10-batches-bin/`` or ``cifar-10-batches-py/``, ``svhn/``. Nothing is
ever downloaded.

Preprocessing (:meth:`~improved_gan.data.ImageDataset.normalize`), as the reference code of each experiment does it:

=================  ===========================  =====================================================
data set           model input                  reference
=================  ===========================  =====================================================
(fashion-)mnist    ``x / 255`` in [0, 1]        MNIST code (generator ends in a sigmoid)
cifar10            ``(x - 127.5) / 128``        CIFAR code (generator ends in tanh; range [-0.996, 0.996])
svhn               ``(x - 127.5) / 127.5``      SVHN code, [-1, 1]
=================  ===========================  =====================================================

Split sizes: a user's folder may hold a consistent subset (every reader checks the counts against the file
headers and sizes, and images against labels), which is how the tests build tiny data sets. Files read from a
system package's location must have the published sizes (``STANDARD_SPLITS``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from improved_gan._dataset_names import (
    DATASET_ALIASES,
    DATASETS,
    IMAGE_DATASETS,
    canonical_dataset_name,
)
from improved_gan.data.cifar import CIFAR_BIN_FILES, CIFAR_PY_FILES, load_cifar_folder
from improved_gan.data.idx import find_idx_file, load_idx_folder
from improved_gan.data.svhn import SVHN_FILES, load_svhn_folder
from improved_gan.data.toy import TOY_DATASETS
from improved_gan.errors import ConfigError, DataError

__all__ = [
    "DATASETS",
    "DATASET_ALIASES",
    "ENV_VAR",
    "IMAGE_DATASETS",
    "STANDARD_SPLITS",
    "SYSTEM_LOCATIONS",
    "ImageDataset",
    "canonical_dataset_name",
    "is_toy",
    "load_dataset",
    "normalize",
    "resolve_data_folder",
    "to_unit",
]

ENV_VAR = "IMPROVED_GAN_DATA"
SYSTEM_LOCATIONS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}
SYSTEM_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}
STANDARD_SPLITS = {
    "fashion-mnist": (60_000, 10_000),
    "mnist": (60_000, 10_000),
    "cifar10": (50_000, 10_000),
    "svhn": (73_257, 26_032),
}


def _has_idx(folder: Path) -> bool:
    return any(
        find_idx_file(folder, s, k) is not None for s in ("train", "test") for k in ("images", "labels")
    )


def _has_any(names: list[str]) -> Callable[[Path], bool]:
    return lambda folder: any((folder / n).is_file() for n in names)


@dataclass(frozen=True)
class _Spec:
    subfolders: tuple[str, ...]
    present: Callable[[Path], bool]
    read: Callable[[Path], dict[str, torch.Tensor]]
    expected: str  # the files, for error messages
    shift: float  # normalize: (x - shift) / scale
    scale: float


_IDX_FILES = "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, ..."
_SPECS = {
    "fashion-mnist": _Spec(("fashion-mnist",), _has_idx, load_idx_folder, _IDX_FILES, 0.0, 255.0),
    "mnist": _Spec(("mnist",), _has_idx, load_idx_folder, _IDX_FILES, 0.0, 255.0),
    "cifar10": _Spec(
        ("cifar-10-batches-bin", "cifar-10-batches-py"),
        _has_any(
            CIFAR_BIN_FILES["train"]
            + CIFAR_BIN_FILES["test"]
            + CIFAR_PY_FILES["train"]
            + CIFAR_PY_FILES["test"]
        ),
        load_cifar_folder,
        "data_batch_1.bin .. data_batch_5.bin, test_batch.bin (or the Python version's data_batch_1 ..)",
        127.5,
        128.0,
    ),
    "svhn": _Spec(
        ("svhn",),
        _has_any(list(SVHN_FILES.values())),
        load_svhn_folder,
        "train_32x32.mat, test_32x32.mat",
        127.5,
        127.5,
    ),
}


def is_toy(name: str) -> bool:
    """Whether ``name`` (or its alias) is a 2-D toy mixture (for :func:`~improved_gan.data.load_toy`)."""
    key = str(name).strip().lower()
    return DATASET_ALIASES.get(key, key) in TOY_DATASETS


def _check_image_name(name: str) -> str:
    key = canonical_dataset_name(name)
    if key in TOY_DATASETS:
        raise ConfigError(f"data set {name!r} is a 2-D toy mixture: use load_toy, not load_dataset")
    return key


def resolve_data_folder(name: str, data_dir: str | os.PathLike | None = None) -> tuple[Path, bool]:
    """The folder holding ``name``'s files, and whether it is a system package's location (see module doc).

    Raises :class:`~improved_gan.errors.DataError` naming the folder searched and the files expected.
    """
    name = _check_image_name(name)
    spec = _SPECS[name]
    env = os.environ.get(ENV_VAR) or None
    system = False
    if data_dir is not None:
        root, origin = Path(data_dir), "--data-dir"
    elif env is not None:
        root, origin = Path(env), ENV_VAR
    elif name in SYSTEM_LOCATIONS:
        root, origin, system = SYSTEM_LOCATIONS[name], "system location", True
    else:
        raise DataError(
            f"no location known for {name}: pass --data-dir or set {ENV_VAR} (no system package has it)"
        )
    install_hint = (
        f"install it with `apt-get install {SYSTEM_PACKAGES[name]}` or pass --data-dir / set {ENV_VAR}"
        if system
        else ""
    )
    if not root.is_dir():
        if system:
            raise DataError(f"{root}: {name} not found; {install_hint}")
        raise DataError(
            f"{root}: data directory ({origin}) does not exist (expected a folder holding {name} files)"
        )
    for folder in (root, *(root / sub for sub in spec.subfolders)):
        if folder.is_dir() and spec.present(folder):
            return folder, system
    if system:
        raise DataError(f"{root}: {name} files missing; {install_hint}")
    subs = ", ".join(f"{sub}/" for sub in spec.subfolders)
    raise DataError(f"{root} ({origin}): no {name} files in it or in {subs} (expected {spec.expected})")


@dataclass(frozen=True, eq=False, repr=False)
class ImageDataset:
    """An image data set in memory: uint8 images ``(N, C, H, W)`` and int64 labels ``(N,)`` per split.

    ``normalize`` maps uint8 images to the recipe's model range; ``to_unit`` maps model-range images back to
    [0, 1] (clamped), for saving and evaluating samples.
    """

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int
    source: Path

    def __post_init__(self) -> None:
        try:
            name = _check_image_name(self.name)
        except ConfigError as exc:  # a programming error here, like the other field checks
            raise ValueError(str(exc)) from None
        object.__setattr__(self, "name", name)  # canonical: "fmnist" -> "fashion-mnist"
        for split in ("train", "test"):
            x, y = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if x.dtype != torch.uint8 or x.ndim != 4:
                raise ValueError(f"{split}_images must be uint8 (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
            if y.dtype != torch.int64 or y.shape != x.shape[:1]:
                raise ValueError(
                    f"{split}_labels must be int64 ({x.shape[0]},), got {y.dtype} {tuple(y.shape)}"
                )
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise ValueError("train and test images must have the same (C, H, W)")

    def __repr__(self) -> str:
        """One line: the name, each split's image count, shape and dtype, the classes and the folder."""

        def split(x: torch.Tensor, y: torch.Tensor) -> str:
            return f"{x.shape[0]} images {tuple(x.shape[1:])} {_dtype_name(x)} + {_dtype_name(y)} labels"

        return (
            f"ImageDataset(name={self.name!r}, train={split(self.train_images, self.train_labels)}, "
            f"test={split(self.test_images, self.test_labels)}, num_classes={self.num_classes}, "
            f"source={str(self.source)!r})"
        )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        c, h, w = self.train_images.shape[1:]
        return int(c), int(h), int(w)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images (any shape) -> float32 in the recipe's range: ``(x - shift) / scale``."""
        return normalize(self.name, x)

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Images in the model's range -> float32 in [0, 1] (the inverse of :meth:`normalize`, / 255)."""
        return to_unit(self.name, x)


def _dtype_name(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def normalize(name: str, x: torch.Tensor) -> torch.Tensor:
    """The preprocessing of image data set ``name``: uint8 images (any shape) -> float32 model inputs."""
    name = _check_image_name(name)
    if x.dtype != torch.uint8:
        raise ValueError(f"normalize expects uint8 images, got {x.dtype}")
    spec = _SPECS[name]
    return (x.to(torch.float32) - spec.shift) / spec.scale


def to_unit(name: str, x: torch.Tensor) -> torch.Tensor:
    """Images in data set ``name``'s model range -> float32 in [0, 1], clamped (for saving and evaluating)."""
    name = _check_image_name(name)
    spec = _SPECS[name]
    return ((x.to(torch.float32) * spec.scale + spec.shift) / 255.0).clamp(0.0, 1.0)


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> ImageDataset:
    """Load image data set ``name`` from ``data_dir``, else ``$IMPROVED_GAN_DATA``, else its system folder.

    Args:
        name: ``"fashion-mnist"`` (or ``"fmnist"``, ...), ``"mnist"``, ``"cifar10"`` or ``"svhn"``.
        data_dir: a folder holding the files, directly or in a sub-folder named after the data set
            (module docstring); default None (the environment variable, then the system location).

    Returns:
        An :class:`ImageDataset` with uint8 images ``(N, C, H, W)`` and int64 labels ``(N,)`` per split;
        ``.normalize(images)`` gives the model inputs of the reference code's preprocessing.

    Raises:
        ConfigError: an unknown name (the message lists the accepted ones).
        DataError: missing or malformed files (the message names the file and what was expected).
    """
    name = _check_image_name(name)
    folder, system = resolve_data_folder(name, data_dir)
    arrays = _SPECS[name].read(folder)
    if system:
        sizes = (arrays["train_labels"].shape[0], arrays["test_labels"].shape[0])
        if sizes != STANDARD_SPLITS[name]:
            raise DataError(
                f"{folder}: {name} split sizes {sizes[0]}/{sizes[1]} "
                f"(expected train/test {STANDARD_SPLITS[name][0]}/{STANDARD_SPLITS[name][1]}); "
                f"reinstall {SYSTEM_PACKAGES.get(name, 'the package')}"
            )
    return ImageDataset(name=name, num_classes=10, source=folder, **arrays)
