"""Square matrices side by side (pairwise distances, similarities, their differences)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["group_runs", "plot_distance_matrices"]


def group_runs(groups: Sequence) -> list[tuple[object, int, int]]:
    """Contiguous runs of equal values: ``[(value, start, stop), ...]`` in order.

    ``group_runs(["a", "a", "b"]) == [("a", 0, 2), ("b", 2, 3)]``. Rows ordered by class give
    one run per class; a class that appears in two places gives two runs.
    """
    runs: list[tuple[object, int, int]] = []
    for i, value in enumerate(groups):
        if runs and runs[-1][0] == value:
            runs[-1] = (value, runs[-1][1], i + 1)
        else:
            runs.append((value, i, i + 1))
    return runs


def plot_distance_matrices(matrices: dict[str, object], *, title: str = "",
                           labels: dict[str, str] | None = None, group_size: int | None = None,
                           group_labels: Sequence[str] | None = None,
                           groups: Sequence | None = None,
                           cmaps: dict[str, str] | None = None,
                           panel_size: tuple[float, float] = (4.4, 4.0)):
    """Draw ``(B, B)`` matrices side by side, each with its own colour scale and colour bar.

    Matrices of different quantities (a distance, a similarity, a difference) must not share a
    scale: each panel is scaled from its own minimum to its own maximum.

    Args:
        matrices: ``{panel title: (B, B) tensor or array}``.
        title: Figure title.
        labels: ``{panel title: colour-bar label}`` (default: the panel title).
        group_size: Draw a red line every ``group_size`` rows and columns (samples ordered by
            hidden class, ``group_size`` per class).
        group_labels: With ``group_size``: one name per group, put as the tick at the group's
            centre.
        groups: Instead of ``group_size``: one name per row (e.g. each sample's class, rows
            already ordered by it); a red line separates runs of equal names (see
            :func:`group_runs`) and each run's name is the tick at its centre.
        cmaps: ``{panel title: matplotlib colormap}`` (default ``"viridis"``), e.g.
            ``"viridis_r"`` for a distance so that close pairs are bright, like similar ones.
        panel_size: ``(width, height)`` of one panel in inches (with its colour bar).
    """
    import matplotlib.pyplot as plt

    arrays = {k: v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
              for k, v in matrices.items()}
    if groups is not None and group_size:
        raise ValueError("give either group_size (with group_labels) or groups, not both")
    runs = None
    if groups is not None:
        runs = group_runs(list(groups))
    elif group_size:
        n = len(next(iter(arrays.values())))
        names = list(group_labels) if group_labels is not None else [None] * -(-n // group_size)
        runs = [(names[g], start, min(start + group_size, n))
                for g, start in enumerate(range(0, n, group_size))]
    width, height = panel_size
    fig, axes = plt.subplots(1, len(arrays), figsize=(width * len(arrays), height), squeeze=False)
    for ax, (name, a) in zip(axes[0], arrays.items()):
        image = ax.imshow(a, vmin=float(a.min()), vmax=float(a.max()),
                          cmap=(cmaps or {}).get(name, "viridis"))
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("sample j")
        ax.set_ylabel("sample i")
        if runs:
            for _, start, _ in runs[1:]:
                ax.axhline(start - 0.5, color="red", lw=1.2)
                ax.axvline(start - 0.5, color="red", lw=1.2)
            if runs[0][0] is not None:
                centres = [(start + stop - 1) / 2 for _, start, stop in runs]
                names = [str(value) for value, _, _ in runs]
                ax.set_xticks(centres, names, fontsize=7, rotation=30, ha="right")
                ax.set_yticks(centres, names, fontsize=7)
                ax.set(xlabel="", ylabel="")
        bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        bar.set_label((labels or {}).get(name, name), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
