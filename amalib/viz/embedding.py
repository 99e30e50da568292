"""UMAP of sketch and photo embeddings: colour = class, marker = domain."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

__all__ = ["class_palette", "umap_embed", "plot_embedding", "plot_umap"]


def class_palette(n: int) -> list:
    """``n`` colours that stay apart: matplotlib's ``tab10`` up to 10 classes, ``tab20`` up to
    20, evenly spaced hues beyond (a hue circle puts neighbouring classes in similar colours)."""
    import matplotlib

    if n <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [matplotlib.colormaps["tab20"](i) for i in range(n)]
    return [matplotlib.colormaps["hsv"](i / n) for i in range(n)]


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def umap_embed(features: np.ndarray, *, seed: int = 0, n_neighbors: int = 15,
               min_dist: float = 0.1) -> np.ndarray:
    """2-D UMAP (cosine metric) of ``(N, D)`` features; deterministic for a fixed seed."""
    import umap

    features = _numpy(features)
    n_neighbors = max(2, min(n_neighbors, len(features) - 1))
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, metric="cosine",
                        random_state=seed, n_jobs=1)
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    try:
        return reducer.fit_transform(features)
    finally:
        # UMAP's fit (numba's OpenMP layer) resets the process's OpenMP thread count, which is
        # torch's: whatever trains after a UMAP plot would run, and round, with another count.
        if torch is not None and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def plot_embedding(ax, points: np.ndarray, labels: np.ndarray, domains: np.ndarray,
                   class_names: Sequence[str] | None = None, title: str = "", *,
                   legend: bool = True) -> list:
    """Scatter 2-D points on ``ax``: one colour per class, ``o`` photos and ``x`` sketches.

    Returns the legend handles (domains, then classes when named and at most 12); with
    ``legend=False`` they are not drawn on ``ax`` (e.g. one legend for a figure of panels)."""
    classes = np.unique(labels)
    palette = class_palette(len(classes))
    for colour, c in zip(palette, classes):
        for domain, marker, size in (("photo", "o", 34), ("sketch", "x", 30)):
            m = (labels == c) & (domains == domain)
            if m.any():
                # photos: filled discs with a white rim, so overlapping ones stay countable
                ax.scatter(points[m, 0], points[m, 1], s=size, marker=marker, color=colour,
                           alpha=0.75, linewidths=1.2 if marker == "x" else 0.5,
                           **({} if marker == "x" else {"edgecolors": "white"}))
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    # The domains' glyphs in black: grey could be read as one of the classes' colours.
    handles = [ax.scatter([], [], s=34, marker="o", color="black", label="photo"),
               ax.scatter([], [], s=30, marker="x", color="black", linewidths=1.2,
                          label="sketch")]
    if class_names is not None and len(classes) <= 12:
        handles += [ax.scatter([], [], s=34, marker="s", color=col, label=class_names[c])
                    for col, c in zip(palette, classes)]
    if legend:
        ax.legend(handles=handles, fontsize=7, loc="best", markerscale=1.2)
    return handles


def plot_umap(
    embeddings: dict[str, tuple],
    *,
    class_names: Sequence[str] | None = None,
    max_per_domain: int = 1000,
    seed: int = 0,
):
    """One UMAP panel per model, e.g. ``{"before AMA": (...), "after AMA": (...)}``.

    Each panel is its own UMAP fit: positions are not comparable across panels, only what is
    near what within a panel. Panels of the same sizes show the same subsample of images.

    Args:
        embeddings: ``{title: (sketch_features, sketch_labels, photo_features, photo_labels)}``.
        class_names: Names by label id (legend when there are at most 12 classes).
        max_per_domain: Random subsample per domain (UMAP cost grows with N).
        seed: Subsampling and UMAP seed.

    Returns:
        A matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(embeddings), figsize=(5.5 * len(embeddings) + 1.6, 5),
                             squeeze=False)
    rng = np.random.default_rng(seed)
    handles = []
    picked: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for ax, (title, (sf, sl, pf, pl)) in zip(axes[0], embeddings.items()):
        sf, sl, pf, pl = map(_numpy, (sf, sl, pf, pl))
        # The same subsample in every panel of the same sizes (e.g. before and after training),
        # so that the panels show the same images.
        if (len(sf), len(pf)) not in picked:
            picked[len(sf), len(pf)] = (rng.permutation(len(sf))[:max_per_domain],
                                        rng.permutation(len(pf))[:max_per_domain])
        si, pi = picked[len(sf), len(pf)]
        feats = np.concatenate([sf[si], pf[pi]])
        labels = np.concatenate([sl[si], pl[pi]])
        domains = np.array(["sketch"] * len(si) + ["photo"] * len(pi))
        # Say what is drawn: a subsample is a subsample.
        shown = f"{len(si)} of {len(sf)} sketches, {len(pi)} of {len(pf)} photos"
        handles = plot_embedding(ax, umap_embed(feats, seed=seed), labels, domains, class_names,
                                 f"{title}\n({shown})", legend=False)
    # One legend for all panels, outside them, so that it hides no point.
    fig.tight_layout(rect=(0, 0, 1 - 1.6 / fig.get_figwidth(), 1))
    fig.legend(handles=handles, fontsize=8, loc="center right", markerscale=1.2, frameon=False)
    return fig
