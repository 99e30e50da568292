"""The mini-benchmark at a glance: a few photos beside a few sketches of each of a few classes."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["plot_mini_benchmark"]


def plot_mini_benchmark(examples: Sequence):
    """One row per class: its photos, then its sketches, the class name and split on the left.

    Args:
        examples: Records with ``name``, ``seen`` (bool), ``photos`` and ``sketches`` (lists of
            RGB images: arrays or PIL images), e.g. from
            :func:`amalib.data.synthetic.mini_benchmark_examples`. Each domain gets as many
            columns as the longest list of the records.

    Returns:
        A :class:`matplotlib.figure.Figure`.
    """
    import matplotlib.pyplot as plt

    if not examples:
        raise ValueError("plot_mini_benchmark needs at least one class of examples")
    per_class = max(len(images) for e in examples for images in (e.photos, e.sketches))
    cols = 2 * per_class
    fig, axes = plt.subplots(len(examples), cols, figsize=(1.3 * cols, 1.4 * len(examples)),
                             squeeze=False)
    for r, example in enumerate(examples):
        for k, images in enumerate((example.photos, example.sketches)):
            for j, image in enumerate(images):
                axes[r, k * per_class + j].imshow(image)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(f"{example.name}\n({'seen' if example.seen else 'unseen'})",
                              fontsize=9)
    axes[0, 0].set_title("photos", fontsize=10, loc="left")
    axes[0, per_class].set_title("sketches", fontsize=10, loc="left")
    fig.tight_layout()
    return fig
