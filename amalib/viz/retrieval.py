"""Retrieval grids (hits and misses marked) and precision–recall curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Re-exported: the grids show these lists, the curves are computed with the metrics.
from amalib.metrics import precision_recall_curve, top_k
from amalib.viz._marks import frame_hit

__all__ = ["top_k", "plot_retrieval_grid", "precision_recall_curve", "plot_precision_recall"]


def _open(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def plot_retrieval_grid(
    query_paths: Sequence[str | Path],
    gallery_paths: Sequence[str | Path],
    ranked: np.ndarray,
    *,
    query_labels: Sequence[int] | None = None,
    gallery_labels: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    title: str = "",
):
    """One row per query: the sketch, then its top-k photos framed green and marked ✓ (hit) or
    framed red and marked ✗ (miss).

    Args:
        query_paths: Image files of the queries.
        gallery_paths: Image files of the gallery.
        ranked: ``(n_queries, k)`` gallery indices, best first (see :func:`top_k`).
        query_labels, gallery_labels: Class ids; without them no frame is drawn.
        class_names: Names by id, shown under the query.
        title: Figure title.
    """
    import matplotlib.pyplot as plt

    n, k = ranked.shape
    fig, axes = plt.subplots(n, k + 1, figsize=(1.3 * (k + 1), 1.4 * n), squeeze=False)
    for row in range(n):
        ax = axes[row, 0]
        ax.imshow(_open(query_paths[row]))
        name = ""
        if query_labels is not None and class_names is not None:
            name = class_names[int(query_labels[row])]
        ax.set_title(f"query\n{name}", fontsize=9)
        for col in range(k):
            ax = axes[row, col + 1]
            j = int(ranked[row, col])
            ax.imshow(_open(gallery_paths[j]))
            if query_labels is not None and gallery_labels is not None:
                hit = int(gallery_labels[j]) == int(query_labels[row])
                frame_hit(ax, hit)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_precision_recall(curves: dict[str, tuple[np.ndarray, np.ndarray]], *,
                          chance: float | None = None):
    """Overlay precision–recall curves, e.g. before and after AMA.

    Each curve gets its own colour, line style and marker (a curve drawn first stays visible
    where a later one covers it); ``chance`` (the class share R/G: a random ranking's precision
    before interpolation; interpolation lifts a random ranking above it at low recall) is drawn
    as a dotted line.
    """
    import matplotlib.pyplot as plt

    styles = [dict(color="#7f7f7f", ls="--", marker="s"), dict(color="#1f77b4", ls="-", marker="o"),
              dict(color="#d62728", ls="-.", marker="^"), dict(color="#2ca02c", ls=":", marker="D")]
    fig, ax = plt.subplots(figsize=(5, 4))
    for i, (name, (recall, precision)) in enumerate(curves.items()):
        every = max(1, len(recall) // 10)
        ax.plot(recall, precision, label=name, lw=2, markevery=every, markersize=5,
                **styles[i % len(styles)])
    if chance is not None:
        ax.axhline(chance, color="k", ls=":", lw=1, label=f"class share R/G ({chance:.2f})")
    ax.set(xlabel="recall", ylabel="mean interpolated precision", xlim=(0, 1), ylim=(0, 1.02),
           title="precision–recall, unseen classes")
    ax.legend()
    fig.tight_layout()
    return fig
