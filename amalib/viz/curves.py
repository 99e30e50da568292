"""Training curves: loss terms, their weighted total and zero-shot retrieval metrics per epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["plot_training_curves"]


def plot_training_curves(history: Sequence[dict], *, start: Mapping[str, float] | None = None,
                         chance: Mapping[str, float] | None = None,
                         log_k: float | None = None):
    """Three panels: the loss terms, their weighted total, and mAP@all / mAP@200 / P@100 / P@200
    per epoch.

    The total has a panel of its own (it is several times the terms and would squash them).
    Legends sit below the panels, never over a point.

    Args:
        history: Records as written to ``metrics.jsonl`` by :class:`amalib.train.Trainer`.
        start: Metrics of the starting backbone (e.g. ``summary.json["before"]``), drawn as
            hollow markers at the tick "start", left of epoch 0, joined to epoch 0 by a dashed line.
        chance: Each metric's random-ranking level (:func:`amalib.metrics.chance_levels`),
            drawn as a dotted line labelled at its right end (metrics with the same level share
            one grey line).
        log_k: ``ln(out_dim)``, the self-distillation loss of a student that predicts a uniform
            distribution; drawn as a grey dotted line on the terms' panel.

    Returns:
        A matplotlib Figure.
    """
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from amalib.metrics import METRIC_KEYS

    fig, (ax_loss, ax_total, ax_eval) = plt.subplots(
        1, 3, figsize=(14, 4.3), gridspec_kw={"width_ratios": (1.2, 0.8, 1.2)})
    epochs = [r["epoch"] for r in history]
    terms = sorted({k for r in history for k in r.get("loss", {})} - {"total"})
    colours = plt.get_cmap("tab10").colors
    for i, term in enumerate(terms):
        ax_loss.plot(epochs, [r["loss"].get(term, float("nan")) for r in history], marker="o",
                     color=colours[i % 10], label=term)
    if log_k is not None:
        ax_loss.axhline(log_k, color="grey", ls=":", lw=1.5,
                        label=f"ln K = {log_k:.2f} (uniform student)")
    ax_loss.set(xlabel="epoch", ylabel="mean of the term over the epoch's steps",
                title="loss terms")
    ax_loss.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.17),
                   frameon=False)
    ax_total.plot(epochs, [r["loss"].get("total", float("nan")) for r in history], color="black",
                  marker="s", ms=4)
    ax_total.set(xlabel="epoch", ylabel="weighted sum of the terms", title="total loss")

    evals = [(r["epoch"], r["eval"]) for r in history if "eval" in r]
    x0 = -1
    for i, key in enumerate(METRIC_KEYS):
        colour = colours[i]
        xs, ys = [e for e, _ in evals], [m[key] for _, m in evals]
        ax_eval.plot(xs, ys, marker="o", color=colour, label=key)
        if start is not None and key in start:
            ax_eval.plot([x0], [start[key]], marker="o", mfc="white", color=colour)
            if xs:
                ax_eval.plot([x0, xs[0]], [start[key], ys[0]], ls="--", lw=1, color=colour)
    if chance is not None:
        levels: dict[float, list[str]] = {}
        for key in METRIC_KEYS:
            if key in chance:
                levels.setdefault(round(float(chance[key]), 3), []).append(key)
        for level, keys in levels.items():
            colour = colours[METRIC_KEYS.index(keys[0])] if len(keys) == 1 else "grey"
            ax_eval.axhline(level, color=colour, ls=":", lw=1)
            ax_eval.annotate(f"chance {', '.join(keys)}", (1, level), xycoords=("axes fraction",
                             "data"), xytext=(-2, 2), textcoords="offset points", ha="right",
                             va="bottom", fontsize=7, color=colour)
    extra = []
    if start is not None:
        extra.append(plt.Line2D([], [], marker="o", mfc="white", color="grey", ls="none",
                                label="starting backbone"))
    if chance is not None:
        extra.append(plt.Line2D([], [], color="grey", ls=":", label="chance (random ranking)"))
    ax_eval.set(xlabel="epoch", ylabel="metric value (0 to 1)",
                title="zero-shot retrieval (unseen classes)")
    if evals or extra:
        handles, labels = ax_eval.get_legend_handles_labels()
        ax_eval.legend(handles + extra, labels + [h.get_label() for h in extra], fontsize=8,
                       ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.17), frameon=False)
    for ax in (ax_loss, ax_total, ax_eval):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    if start is not None:
        ticks = sorted({e for e, _ in evals})
        ax_eval.set_xticks([x0, *ticks])
        ax_eval.set_xticklabels(["start", *(str(e) for e in ticks)])
    fig.tight_layout()
    return fig


def save_training_curves(history: Sequence[dict], path, *, out_dim: int | None = None,
                         start: Mapping[str, float] | None = None,
                         chance: Mapping[str, float] | None = None, dpi: int = 100):
    """Draw :func:`plot_training_curves` into ``path`` (a PNG) and close the figure.

    ``history`` is a run's ``metrics.jsonl`` records (``Trainer.fit`` returns them);
    ``out_dim`` (the DINO head's, AMA runs only) draws the uniform-prediction level ``ln K``.
    Returns the path, or ``None`` when there is no record to draw.
    """
    import math
    from pathlib import Path

    import matplotlib.pyplot as plt

    if not history:
        return None
    fig = plot_training_curves(history, start=start, chance=chance,
                               log_k=None if out_dim is None else math.log(int(out_dim)))
    path = Path(path)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path
