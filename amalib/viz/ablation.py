"""The ablation of AMA's terms as a figure: one bar per row, one dot per seed."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_ablation", "plot_paired_differences"]


def _seed_dots(ax, values, rows, *, size: float) -> None:
    """One black dot per seed on each row ``rows[i]`` at ``values[i]``, spread vertically where
    they would overlap (a seaborn swarm, so eight seeds stay eight dots)."""
    try:
        import seaborn as sns
    except ImportError as err:
        raise ImportError("the ablation figures draw their per-seed dots with seaborn, which "
                          "comes with amalib's [full] extra: pip install 'amalib[full]'") from err

    if not any(len(v) for v in values):
        return
    x = np.concatenate([np.asarray(v, dtype=float) for v in values])
    y = np.concatenate([np.full(len(v), r, dtype=float) for v, r in zip(values, rows)])
    sns.swarmplot(x=x, y=y, orient="h", native_scale=True, color="black", size=size, ax=ax,
                  warn_thresh=1.0)


def plot_ablation(table: dict, *, metric: str = "mAP@all", chance: float | None = None,
                  untrained: str = "-"):
    """Horizontal bars of ``metric`` for every row of an ablation table (mean over seeds).

    Args:
        table: ``{row: {seed: {metric: value}}}`` (``results["table"]`` of
            :func:`amalib.experiments.ablation.load_ablation_results`).
        metric: Which metric to draw.
        chance: The metric under a random ranking (:func:`amalib.metrics.chance_levels`),
            drawn as a dotted line.
        untrained: The seed key of a row that was not trained (the starting backbone's row;
            :data:`amalib.experiments.ablation.UNTRAINED`).

    Returns:
        A matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    names = list(table)
    values = [np.array([r[metric] for r in table[n].values()]) for n in names]
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(names) + 1.4))
    y = np.arange(len(names))[::-1]
    colours = ["#7f7f7f" if n.startswith("starting") else "#9467bd" if n.startswith("oracle")
               else "#1f77b4" for n in names]
    ax.barh(y, [v.mean() for v in values], color=colours, alpha=0.8, height=0.6)
    _seed_dots(ax, values, y, size=4)
    for yi, v, name in zip(y, values, names):
        seeds = ("no training" if list(table[name]) == [untrained] else
                 "1 run" if len(v) == 1 else f"mean of {len(v)} seeds")
        ax.text(v.max() + 0.015, yi, f"{v.mean():.3f} ({seeds})", va="center", fontsize=8)
    if chance is not None:
        ax.axvline(chance, color="k", ls=":", lw=1, label=f"chance: random ranking ({chance:.3f})")
        ax.legend(fontsize=8, loc="upper right")
    short = [n.split(":")[0].split(" (")[0] for n in names]
    ax.set_yticks(y, short, fontsize=8)
    ax.set_xlim(0, min(1.0, max(v.max() for v in values) * 1.3))
    ax.set_xlabel(f"{metric} on the unseen classes (0 to 1)")
    ax.set_title(f"ablation: {metric} per row (dots: individual seeds)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_paired_differences(differences, *, title: str = ""):
    """What each added term changes, seed by seed: one row per term, a dot per seed, the mean and
    its 95 % interval, and zero.

    Args:
        differences: Records with ``term``, ``base``, ``row``, ``metric``, ``differences`` (one
            per seed), ``mean``, ``low``, ``high`` and ``resolved``
            (:func:`amalib.experiments.ablation.paired_differences`).
        title: Figure title.

    Returns:
        A matplotlib Figure: an interval that does not cross the zero line is a resolved effect.
    """
    import matplotlib.pyplot as plt

    differences = list(differences)
    fig, ax = plt.subplots(figsize=(9.5, 0.8 * len(differences) + 1.6))
    y = np.arange(len(differences))[::-1]
    for yi, d in zip(y, differences):
        colour = "#2ca02c" if d.low > 0 else "#d62728" if d.high < 0 else "#7f7f7f"
        if np.isfinite(d.low):
            ax.hlines(yi, d.low, d.high, color=colour, linewidth=3, alpha=0.6)
        ax.plot([d.mean], [yi], "|", color=colour, ms=18, mew=2.5)
    _seed_dots(ax, [d.differences for d in differences], y, size=6)
    ax.axvline(0, color="black", lw=1)

    def label(d) -> str:
        interval = (f" [{d.low:+.4f}, {d.high:+.4f}]" if np.isfinite(d.low) else "")
        verdict = " resolved" if d.resolved else ""
        return f"+ {d.term}: {d.mean:+.4f}{interval}{verdict}\n({d.base} -> {d.row})"

    ax.set_yticks(y, [label(d) for d in differences], fontsize=8)
    metric = differences[0].metric if differences else ""
    ax.set_xlabel(f"change in {metric} when the term is added (same seed)")
    ax.set_title(title or "each term's effect, paired by seed: dots = seeds, tick = mean, bar = "
                 "95 % interval\n(green: helps, red: hurts, grey: not resolved from zero)",
                 fontsize=9)
    fig.tight_layout()
    return fig
