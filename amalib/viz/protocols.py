"""Figures of the evaluation protocols and diagnostics of :mod:`amalib.protocols`.

* :func:`plot_k_occurrence` — the hubness histogram: how many gallery items appear in how many
  top-k lists (log count axis).
* :func:`plot_hubs` — the most retrieved gallery images with the share of lists they are in.
* :func:`plot_per_class_ap` — AP per query class, hardest first.
* :func:`plot_protocol_comparison` — the metrics of several protocols (e.g. zs vs gzs) side by
  side.

Used in ``notebooks/06_retrieval_evaluation.ipynb``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["plot_k_occurrence", "plot_hubs", "plot_per_class_ap", "plot_protocol_comparison"]


def plot_k_occurrence(reports, *, title: str = ""):
    """How the k-occurrence ``N_k`` of the gallery items is spread, one step curve per report.

    Args:
        reports: A :class:`amalib.protocols.HubnessReport` or ``{name: report}`` (e.g. before
            and after AMA), all with the same ``k``.
        title: Figure title (default: names the list length).

    Each curve counts the gallery items listed at least ``n`` times, for every ``n`` (the
    complementary cumulative count: it falls as ``n`` grows, with no gaps where no item has
    exactly ``n``). On the logarithmic axis a hubby gallery shows a long right tail, items
    listed by very many queries; the drop from ``n = 0`` to ``n = 1`` is the items never
    retrieved. The dashed line marks ``k · Q / G``, the count every item would have without
    hubness.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if not isinstance(reports, Mapping):
        reports = {"": reports}
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, report in reports.items():
        counts = np.asarray(report.counts)
        n = np.arange(int(counts.max()) + 1)
        at_least = (counts[None, :] >= n[:, None]).sum(1)
        label = f"{name} (skewness {report.skewness:.1f})".strip()
        ax.step(n, at_least, where="post", label=label)
    first = next(iter(reports.values()))
    expected = first.k * first.n_queries / len(first.counts)
    ax.axvline(expected, color="0.4", linestyle="--", linewidth=1,
               label=f"without hubness: k·Q/G = {expected:.1f}")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel=f"n: top-{first.k} lists (of {first.n_queries} queries)",
           ylabel=f"gallery items with N_{first.k} ≥ n (log scale)",
           title=title or f"hubness: k-occurrence of the gallery (k = {first.k})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_hubs(gallery_paths: Sequence[str | Path], report, *, n: int = 8, title: str = "",
              labels: Sequence[str] | None = None):
    """The ``n`` most retrieved gallery images, each titled with the share of lists it is in.

    Args:
        gallery_paths: Image files of the gallery, by index.
        report: A :class:`amalib.protocols.HubnessReport` of that gallery.
        n: How many hubs to show.
        title: Figure title.
        labels: Optional class name per gallery item, shown under the share.
    """
    import matplotlib.pyplot as plt
    from PIL import Image

    hubs = report.hubs[:n]
    fig, axes = plt.subplots(1, len(hubs), figsize=(1.5 * len(hubs), 2.0), squeeze=False)
    for ax, j in zip(axes[0], hubs):
        with Image.open(gallery_paths[j]) as im:
            ax.imshow(np.asarray(im.convert("RGB")))
        share = report.counts[j] / report.n_queries
        name = f"\n{labels[j]}" if labels is not None else ""
        ax.set_title(f"{share:.0%} of lists{name}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or f"the most retrieved gallery images (top {report.k})", fontsize=9)
    fig.tight_layout()
    return fig


def plot_per_class_ap(rows: Sequence[Mapping], *, title: str = "", n: int | None = None,
                      reference: Mapping[str, float] | None = None,
                      reference_label: str = "before"):
    """Horizontal bars of AP per class, hardest at the top.

    Args:
        rows: :func:`amalib.protocols.per_class_ap` output (sorted hardest first).
        title: Figure title.
        n: Show only the ``n`` hardest classes (default: all).
        reference: ``{class: AP}`` of another model (e.g. before training), drawn as a hollow
            marker on each bar, joined to the bar's end, so that a gain or a loss per class
            reads at a glance.
        reference_label: Legend entry of ``reference``.
    """
    import matplotlib.pyplot as plt

    rows = list(rows)[: n or None]
    fig, ax = plt.subplots(figsize=(5.5, 1.4 + 0.3 * len(rows)))
    y = np.arange(len(rows))
    ap = [r["AP"] for r in rows]
    ax.barh(y, ap, color="#4575b4", label="AP")
    ax.set_yticks(y, [f"{r['class']} ({r['n_queries']})" for r in rows], fontsize=8)
    ax.invert_yaxis()  # hardest first, at the top
    mean = float(np.mean(ap)) if ap else 0.0
    ax.axvline(mean, color="0.3", linestyle="--", linewidth=1, label=f"mean {mean:.3f}")
    if reference is not None:
        ref = [reference[r["class"]] for r in rows]
        ax.hlines(y, ref, ap, color="0.2", linewidth=1)
        ax.scatter(ref, y, marker="o", s=28, facecolor="white", edgecolor="0.1", zorder=3,
                   label=f"{reference_label} (mean {float(np.mean(ref)):.3f})")
    ax.set(xlabel="AP@all (mean over the class's queries)",
           ylabel="query class (queries)", xlim=(0, 1), title=title or "AP per class")
    # The legend goes under the axes (it covers no bar): a strip of 0.35 in kept free for it.
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 0.0),
              bbox_transform=fig.transFigure, ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.35 / fig.get_figheight(), 1, 1))
    return fig


def plot_protocol_comparison(results: Mapping[str, Mapping],
                             keys: Sequence[str] = ("mAP@all", "mAP@200", "P@100", "P@200"), *,
                             chance: Mapping[str, Mapping] | None = None, title: str = ""):
    """Grouped bars: for each metric, one bar per protocol (or model × protocol).

    Args:
        results: ``{name: metrics}``, e.g. ``{"zs": ..., "gzs": ..., "p2s": ...}`` as returned by
            :func:`amalib.retrieval.evaluate.protocol_report` or :mod:`amalib.protocols`.
        keys: The metrics to show.
        chance: ``{name: metrics}``: each bar's chance level (a random ranking of that
            protocol's own gallery, :func:`amalib.metrics.chance_levels`), drawn as a black
            tick across the bar. Names missing from it get no tick.
        title: Figure title.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 3.8))
    width = 0.8 / max(len(results), 1)
    x = np.arange(len(keys))
    top = 0.0
    for i, (name, metrics) in enumerate(results.items()):
        values = [metrics[k] for k in keys]
        centres = x + (i - (len(results) - 1) / 2) * width
        bars = ax.bar(centres, values, width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
        top = max(top, *values)
        if chance is not None and name in chance:
            levels = [chance[name][k] for k in keys]
            ax.hlines(levels, centres - width / 2, centres + width / 2, colors="black",
                      linewidth=2, label="chance (random ranking)" if i == 0 else None)
    ax.set_xticks(x, list(keys))
    ax.set(xlabel="metric", ylabel="value (0 to 1)", ylim=(0, min(1.0, top * 1.2)),
           title=title or "retrieval protocols compared")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig
