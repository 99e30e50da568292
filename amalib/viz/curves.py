"""Training curves: loss terms and zero-shot retrieval metrics per epoch."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["plot_training_curves"]


def plot_training_curves(history: Sequence[dict]):
    """Two panels: every loss term per epoch, and mAP@all / mAP@200 / P@100 / P@200.

    Args:
        history: Records as written to ``metrics.jsonl`` by :class:`amalib.engine.Trainer`.

    Returns:
        A matplotlib Figure.
    """
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = [r["epoch"] for r in history]
    terms = sorted({k for r in history for k in r.get("loss", {})})
    for term in terms:
        ax_loss.plot(epochs, [r["loss"].get(term, float("nan")) for r in history], marker="o",
                     label=term, lw=2.5 if term == "total" else 1.2)
    ax_loss.set(xlabel="epoch", ylabel="mean loss over the epoch's steps", title="training losses")
    ax_loss.legend(fontsize=8, ncol=2)
    evals = [(r["epoch"], r["eval"]) for r in history if "eval" in r]
    for key in ("mAP@all", "mAP@200", "P@100", "P@200"):
        ax_eval.plot([e for e, _ in evals], [m[key] for _, m in evals], marker="o", label=key)
    ax_eval.set(xlabel="epoch", ylabel="metric value (0 to 1)",
                title="zero-shot retrieval (unseen classes)")
    if evals:
        ax_eval.legend(fontsize=8)
    for ax in (ax_loss, ax_eval):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    fig.tight_layout()
    return fig
