"""Sample grids (PNG, Pillow) and 2-D scatter plots (matplotlib) of generated samples."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from improved_gan.training.checkpoint import atomic_write_bytes


def grid_image(images: torch.Tensor, *, nrow: int | None = None, pad: int = 2) -> Image.Image:
    """Tile ``images (N, C, H, W)`` with values in [0, 1] into one image (C = 1 or 3), ``nrow`` per row."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape (N, 1|3, H, W), got {tuple(images.shape)}")
    n, c, h, w = images.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    ncol = int(math.ceil(n / nrow))
    canvas = np.ones((ncol * (h + pad) + pad, nrow * (w + pad) + pad, c), dtype=np.uint8) * 255
    arr = (
        images.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    )  # (N, H, W, C)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        canvas[y : y + h, x : x + w] = arr[i]
    return Image.fromarray(canvas[..., 0] if c == 1 else canvas, mode="L" if c == 1 else "RGB")


def save_grid(images: torch.Tensor, path: str | Path, **kw) -> None:
    buf = io.BytesIO()
    grid_image(images, **kw).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def save_scatter(
    points: torch.Tensor,
    path: str | Path,
    *,
    centres: torch.Tensor | None = None,
    title: str = "",
    lim: float | None = None,
) -> None:
    """Scatter plot of 2-D samples ``(N, 2)`` with the mixture's mode centres marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = points.detach().cpu().numpy()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4, color="tab:blue", label="generated")
    if centres is not None:
        c = centres.cpu().numpy()
        ax.scatter(c[:, 0], c[:, 1], s=30, marker="x", color="tab:red", label="modes")
        lim = lim or float(np.abs(c).max() * 1.5 + 0.5)
    if lim:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=7)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
