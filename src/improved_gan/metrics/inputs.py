"""What the metrics take: one loaded input (:class:`Samples`) and the one place that reads a user's array.

Every entry point (``compute_metrics``, ``improved-gan score``, ``evaluate`` and the training loop's evaluation)
turns its samples into a :class:`Samples`: uint8 images ``(N, C, H, W)`` in [0, 255] (C = 1 or 3), the form the
feature networks take (as if saved as PNG), or float64 rows ``(N, D)`` (2-D mixture points, or features).

Image arrays are accepted as uint8 in [0, 255], or float in [0, 1], [-1, 1] or [0, 255]; in the layouts
``(N, C, H, W)``, ``(N, H, W, C)`` or ``(N, H, W)``. The range and layout are detected where unambiguous
(:func:`detect_range`, :func:`detect_layout`) and refused otherwise with an error naming the expected forms,
never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from improved_gan.errors import UserError

#: ``--range`` / ``value_range=`` names -> (low, high).
RANGES = {"0,255": (0.0, 255.0), "0,1": (0.0, 1.0), "-1,1": (-1.0, 1.0)}
#: ``--layout`` / ``layout=`` names.
LAYOUTS = ("nchw", "nhwc", "nhw")
_TOLERANCE = 1e-3  # values this far outside a range are clipped, farther is an error


class InputError(UserError, ValueError):
    """Samples the metrics cannot take (a ValueError for the Python API; exit status 2 on the command line)."""


@dataclass
class Samples:
    """One loaded input: uint8 images (N, C, H, W) or float64 rows (N, D), and how they were read."""

    source: str
    images: torch.Tensor | None = None
    features: np.ndarray | None = None
    how: str = ""
    dataset: str | None = None  # the data set of a reference split or a run, when known
    split: str | None = None  # "train" / "test" for a data-set split (its features are cached on disk)
    subset: tuple[int, int] | None = None  # (count, seed) of a seeded random subset of the split

    def __len__(self) -> int:
        return int(self.images.shape[0] if self.images is not None else self.features.shape[0])

    def describe(self) -> str:
        shape = tuple(self.images.shape if self.images is not None else self.features.shape)
        return f"{self.source}: {shape} {self.how}".strip()


def detect_range(x: np.ndarray, source: str) -> str:
    """The value range of an image array: ``"0,255"``, ``"0,1"`` or ``"-1,1"``; InputError when unclear.

    uint8 (and integer arrays within [0, 255]) are [0, 255]. Floats: any value below 0 (down to -1) means
    [-1, 1]; all values in [0, 1] mean [0, 1]; integral values up to 255 with a maximum of at least 2 mean
    [0, 255]; anything else (e.g. floats in [0, 1.5], or beyond 255) is ambiguous and needs the range named.
    """
    lo, hi = float(x.min()), float(x.max())
    hint = "name the range (--range / value_range= 0,255, 0,1 or -1,1)"
    if x.dtype == np.uint8:
        return "0,255"
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        if lo >= 0 and hi <= 255:
            return "0,255"
        raise InputError(f"{source}: integer values in [{lo:g}, {hi:g}], expected [0, 255]")
    if lo < 0:
        if lo >= -1 - _TOLERANCE and hi <= 1 + _TOLERANCE:
            return "-1,1"
        raise InputError(f"{source}: values in [{lo:.4g}, {hi:.4g}] fit no image range; {hint}")
    if hi <= 1 + _TOLERANCE:
        return "0,1"
    if hi >= 2 and hi <= 255 and np.all(x == np.round(x)):
        return "0,255"
    raise InputError(f"{source}: float values in [{lo:.4g}, {hi:.4g}] are ambiguous; {hint}")


def to_uint8_images(x: np.ndarray, value_range: str, source: str) -> np.ndarray:
    """An image array in ``value_range`` -> uint8 in [0, 255] (rounded); InputError if values lie outside."""
    lo, hi = RANGES[value_range]
    vmin, vmax = float(x.min()), float(x.max())
    slack = _TOLERANCE * (hi - lo)
    if vmin < lo - slack or vmax > hi + slack:
        raise InputError(f"{source}: values in [{vmin:.4g}, {vmax:.4g}] lie outside the range {value_range}")
    if x.dtype == np.uint8:
        return x
    out = np.empty(x.shape, dtype=np.uint8)
    for start in range(0, x.shape[0], 1024):  # float64 one chunk at a time: memory bounded by the chunk
        unit = (x[start : start + 1024].astype(np.float64) - lo) / (hi - lo)
        out[start : start + 1024] = np.round(np.clip(unit, 0.0, 1.0) * 255)
    return out


def detect_layout(shape: tuple[int, ...], layout: str | None, source: str) -> str:
    """``"nchw"``, ``"nhwc"`` or ``"nhw"`` for an image array of ``shape``; InputError when unclear."""
    if layout is not None:
        if layout not in LAYOUTS:
            raise InputError(f"{source}: layout {layout!r}, expected one of {', '.join(LAYOUTS)}")
        want = 3 if layout == "nhw" else 4
        if len(shape) != want:
            raise InputError(f"{source}: layout {layout} needs a {want}-d array, got shape {shape}")
        return layout
    if len(shape) == 3:
        return "nhw"
    channels_first, channels_last = shape[1] in (1, 3), shape[3] in (1, 3)
    if channels_first and channels_last:
        raise InputError(
            f"{source}: shape {shape} could be (N, C, H, W) or (N, H, W, C); name the layout "
            f"(--layout / layout= nchw or nhwc)"
        )
    if channels_first:
        return "nchw"
    if channels_last:
        return "nhwc"
    raise InputError(
        f"{source}: shape {shape} is no image array: expected (N, H, W), (N, C, H, W) or (N, H, W, C) with "
        f"C = 1 or 3"
    )


def array_to_samples(x, source: str, *, value_range=None, layout=None, rows: bool | None = None) -> Samples:
    """A user's array or tensor -> :class:`Samples` (uint8 images (N, C, H, W), or float64 rows (N, D)).

    ``rows``: True reads a 2-d array as rows (points or features), False refuses one; None (default): a 2-d
    array is rows unless a ``layout`` is named. Raises :class:`InputError` naming the expected forms.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise InputError(f"{source}: expected a numeric array, got dtype {x.dtype}")
    if x.size == 0 or x.shape[0] == 0:
        raise InputError(f"{source}: the array is empty (shape {x.shape})")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        raise InputError(f"{source}: the array has NaN or infinite values")
    if value_range is not None and value_range not in RANGES:
        raise InputError(f"{source}: range {value_range!r}, expected one of {', '.join(RANGES)}")
    if x.ndim == 2 and layout is None and rows is not False:
        return Samples(source, features=x.astype(np.float64), how="rows (N, D)")
    if x.ndim not in (3, 4) or rows:
        want = "rows (N, D)" if rows else "images (N, H, W), (N, C, H, W) or (N, H, W, C)"
        if rows is None:
            want += " or features (N, D)"
        raise InputError(f"{source}: shape {x.shape}: expected {want}")
    lay = detect_layout(x.shape, layout, source)
    rng = value_range or detect_range(x, source)
    images = to_uint8_images(x, rng, source)
    if lay == "nhw":
        images = images[:, None]
    elif lay == "nhwc":
        images = images.transpose(0, 3, 1, 2)
    if images.shape[1] not in (1, 3):
        raise InputError(f"{source}: {images.shape[1]} channels, expected 1 (grey) or 3 (RGB)")
    how = f"{x.dtype} in [{rng.replace(',', ', ')}]{' (detected)' if value_range is None else ''}, {lay.upper()}"
    return Samples(source, images=torch.from_numpy(np.ascontiguousarray(images)), how=how)
