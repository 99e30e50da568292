"""Figures: UMAP embeddings, retrieval grids, precision–recall, training curves.

Imported on demand (``from amalib.viz.embedding import plot_umap``) so that ``import amalib``
stays free of matplotlib, seaborn and umap.
"""
