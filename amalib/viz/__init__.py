"""Figures: UMAP embeddings, retrieval grids, precision–recall, training curves, the sketch pad,
the mini-benchmark's examples.

Imported on demand (``from amalib.viz.embedding import plot_umap``) so that ``import amalib``
stays free of matplotlib, seaborn and umap. :func:`sketch_pad` and :func:`static_example`
(module :mod:`amalib.viz.sketch_widget`) are re-exported lazily: ``amalib.viz.sketch_pad(...)``
imports ipycanvas only when it builds a live pad.
"""

from __future__ import annotations

from amalib._lazy import lazy_exports

_EXPORTS = {
    "sketch_widget": ("SketchPad", "live_frontend", "sketch_pad", "static_example"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
