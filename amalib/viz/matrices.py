"""Square matrices side by side (pairwise distances, similarities, their differences)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["plot_distance_matrices"]


def plot_distance_matrices(matrices: dict[str, object], *, title: str = "",
                           labels: dict[str, str] | None = None, group_size: int | None = None,
                           group_labels: Sequence[str] | None = None,
                           cmaps: dict[str, str] | None = None):
    """Draw ``(B, B)`` matrices side by side, each with its own colour scale and colour bar.

    Matrices of different quantities (a distance, a similarity, a difference) must not share a
    scale: each panel is scaled from its own minimum to its own maximum.

    Args:
        matrices: ``{panel title: (B, B) tensor or array}``.
        title: Figure title.
        labels: ``{panel title: colour-bar label}`` (default: the panel title).
        group_size: Draw a red line every ``group_size`` rows and columns (samples ordered by
            hidden class, ``group_size`` per class).
        group_labels: One name per group, put as the tick at the group's centre.
        cmaps: ``{panel title: matplotlib colormap}`` (default ``"viridis"``), e.g.
            ``"viridis_r"`` for a distance so that close pairs are bright, like similar ones.
    """
    import matplotlib.pyplot as plt

    arrays = {k: v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
              for k, v in matrices.items()}
    fig, axes = plt.subplots(1, len(arrays), figsize=(4.0 * len(arrays), 3.8), squeeze=False)
    for ax, (name, a) in zip(axes[0], arrays.items()):
        image = ax.imshow(a, vmin=float(a.min()), vmax=float(a.max()),
                          cmap=(cmaps or {}).get(name, "viridis"))
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("sample j")
        ax.set_ylabel("sample i")
        if group_size:
            for edge in range(group_size, len(a), group_size):
                ax.axhline(edge - 0.5, color="red", lw=1.2)
                ax.axvline(edge - 0.5, color="red", lw=1.2)
            if group_labels is not None:
                centres = [(g + 0.5) * group_size - 0.5 for g in range(len(group_labels))]
                ax.set_xticks(centres, group_labels, fontsize=7, rotation=30, ha="right")
                ax.set_yticks(centres, group_labels, fontsize=7)
                ax.set(xlabel="", ylabel="")
        bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        bar.set_label((labels or {}).get(name, name), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
