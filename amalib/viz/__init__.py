"""Figures: UMAP embeddings, retrieval grids, precision–recall, training curves, protocols,
the mini-benchmark's examples.

Pure drawing: arrays or small result records in, a matplotlib Figure out; nothing here trains,
loads a checkpoint or imports :mod:`amalib.train`, :mod:`amalib.retrieval` or the apps
(import-linter checks it). Imported on demand (``from amalib.viz.embedding import plot_umap``)
so that ``import amalib`` stays free of matplotlib, seaborn and umap. The interactive sketch
pad lives in :mod:`amalib.apps`.
"""
