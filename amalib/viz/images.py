"""Figures of images and what a backbone sees in them: the multi-crop views, CLS attention maps,
rows of image files; and :func:`to_image`, which turns a normalised tensor back into pixels.

Pure drawing (see :mod:`amalib.viz`): arrays, tensors or image files in, a matplotlib Figure
out. The notebooks reach these through :mod:`amalib.tutorial` as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["plot_attention", "plot_image_rows", "plot_multicrop", "to_image"]


def to_image(tensor, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)) -> np.ndarray:
    """Undo the ImageNet normalisation of a ``(3, H, W)`` tensor: ``(H, W, 3)`` floats in [0, 1]."""
    import torch

    t = torch.as_tensor(tensor).detach().float().cpu()
    t = t * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
    return t.clamp(0, 1).permute(1, 2, 0).numpy()


def plot_multicrop(crops_by_domain: dict[str, Sequence]):
    """One row per domain: the original image, then every crop (globals first) at its size.

    Args:
        crops_by_domain: ``{"sketch": (pil_image, crops), "photo": (pil_image, crops)}`` with
            ``crops`` the list returned by :class:`amalib.data.MultiCropTransform`.
    """
    import matplotlib.pyplot as plt

    n_cols = 1 + max(len(c) for _, c in crops_by_domain.values())
    fig, axes = plt.subplots(len(crops_by_domain), n_cols, figsize=(1.5 * n_cols,
                             1.8 * len(crops_by_domain)), squeeze=False)
    for row, (domain, (image, crops)) in enumerate(crops_by_domain.items()):
        axes[row, 0].imshow(np.asarray(image))
        axes[row, 0].set_title(f"{domain}\n{image.size[0]} px", fontsize=8)
        for col, crop in enumerate(crops, start=1):
            axes[row, col].imshow(to_image(crop))
            kind = "global" if crop.shape[-1] == crops[0].shape[-1] else "local"
            axes[row, col].set_title(f"{kind} {crop.shape[-1]} px", fontsize=8)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in axes[row, len(crops) + 1:]:
            ax.axis("off")
    fig.tight_layout()
    return fig


def plot_attention(images, maps, titles: Sequence[str] | None = None):
    """Images (top row) and the mean over heads of their CLS attention (bottom row, overlaid).

    All maps share one colour scale (from 0 to the largest weight), shown by a colour bar:
    the attention weights of the patches sum to at most 1 per head, so a uniform map over
    ``n`` patches sits at ``1/n`` everywhere.

    Args:
        images: ``(B, 3, H, W)`` normalised images.
        maps: ``(B, heads, H / p, W / p)`` from :func:`amalib.models.cls_attention_maps`.
        titles: One title per image.
    """
    import matplotlib.pyplot as plt
    import torch

    maps = torch.as_tensor(maps).float().mean(1, keepdim=True)
    size = images.shape[-2:]
    up = torch.nn.functional.interpolate(maps, size=size, mode="nearest")[:, 0].numpy()
    vmax = float(up.max())
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.8 * n + 1.2, 4.2), squeeze=False,
                             layout="constrained")
    shown = None
    for i in range(n):
        axes[0, i].imshow(to_image(images[i]))
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=9)
        axes[1, i].imshow(to_image(images[i]))
        # A light low end (YlOrRd) keeps dark sketch strokes visible under weak attention.
        shown = axes[1, i].imshow(up[i], cmap="YlOrRd", alpha=0.6, vmin=0.0, vmax=vmax)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[1, 0].set_ylabel("CLS attention", fontsize=9)
    # One colour bar for the whole figure, so that both rows keep the same column widths.
    bar = fig.colorbar(shown, ax=axes, shrink=0.8, pad=0.01)
    bar.set_label("attention weight\n(mean over heads)", fontsize=9)
    bar.ax.tick_params(labelsize=8)
    return fig


def plot_image_rows(rows: Sequence[Sequence[str | Path]], row_titles: Sequence[str],
                    title: str = ""):
    """A grid of image files, one titled row per entry of ``rows``."""
    import matplotlib.pyplot as plt
    from PIL import Image

    n_cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(1.2 * n_cols + 2.0, 1.3 * len(rows)),
                             squeeze=False)
    for r, (paths, name) in enumerate(zip(rows, row_titles)):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(paths):
                with Image.open(paths[c]) as im:
                    ax.imshow(np.asarray(im.convert("RGB")))
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(name, fontsize=9, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
