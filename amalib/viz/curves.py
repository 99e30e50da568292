"""Training curves: loss terms and zero-shot retrieval metrics per epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["plot_training_curves"]


def plot_training_curves(history: Sequence[dict], *, start: Mapping[str, float] | None = None,
                         chance: Mapping[str, float] | None = None):
    """Two panels: the loss terms per epoch, and mAP@all / mAP@200 / P@100 / P@200.

    The weighted total is on its own (right-hand) axis, so that it does not squash the terms.
    Legends sit below the panels, never over a point.

    Args:
        history: Records as written to ``metrics.jsonl`` by :class:`amalib.engine.Trainer`.
        start: Metrics of the starting backbone (e.g. ``summary.json["before"]``), drawn as
            hollow markers at the tick "start", left of epoch 0, joined to epoch 0 by a dashed line.
        chance: Each metric's random-ranking level (:func:`amalib.metrics.chance_levels`),
            drawn as a dotted line in the metric's colour.

    Returns:
        A matplotlib Figure.
    """
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from amalib.metrics import METRIC_KEYS

    fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(11, 4.2))
    epochs = [r["epoch"] for r in history]
    terms = sorted({k for r in history for k in r.get("loss", {})} - {"total"})
    colours = plt.get_cmap("tab10").colors
    for i, term in enumerate(terms):
        ax_loss.plot(epochs, [r["loss"].get(term, float("nan")) for r in history], marker="o",
                     color=colours[i % 10], label=term)
    ax_loss.set(xlabel="epoch", ylabel="mean of the term over the epoch's steps",
                title="training losses")
    handles, labels = ax_loss.get_legend_handles_labels()
    if any("total" in r.get("loss", {}) for r in history):
        ax_total = ax_loss.twinx()
        line, = ax_total.plot(epochs, [r["loss"].get("total", float("nan")) for r in history],
                              color="black", ls="--", marker="s", ms=4, label="total (right axis)")
        ax_total.set_ylabel("weighted total")
        handles.append(line)
        labels.append(line.get_label())
    ax_loss.legend(handles, labels, fontsize=8, ncol=4, loc="upper center",
                   bbox_to_anchor=(0.5, -0.17), frameon=False)

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
        if chance is not None and key in chance:
            ax_eval.axhline(chance[key], color=colour, ls=":", lw=1)
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
    for ax in (ax_loss, ax_eval):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    if start is not None:
        ax_eval.set_xticks([x0, *sorted(set(e for e, _ in evals))])
        ax_eval.set_xticklabels(["start", *(str(e) for e in sorted(set(e for e, _ in evals)))])
    fig.tight_layout()
    return fig
