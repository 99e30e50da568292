"""Retrieval: features of a backbone, their evaluation, and galleries you can search.

:mod:`~amalib.retrieval.features` extracts (and gathers under DDP) features of a dataset;
:mod:`~amalib.retrieval.evaluate` scores a backbone on a benchmark's protocols;
:mod:`~amalib.retrieval.index` is the one gallery type, searched exactly or approximately;
:mod:`~amalib.retrieval.gallery` builds one from a checkpoint and a split or folder;
:mod:`~amalib.retrieval.sketch_query` embeds a drawn sketch and queries a gallery.
Every ranking uses :func:`amalib.metrics.top_k` (exact, machine-independent scores).
"""

from __future__ import annotations

from amalib._lazy import lazy_exports

_EXPORTS = {
    "features": ("FeatureSet", "extract_features"),
    "evaluate": ("evaluate_backbone", "evaluate_protocol", "load_trained_backbone",
                 "test_features", "adapt_batch_norm"),
    "index": ("GalleryIndex", "GalleryIndexError"),
    "gallery": ("build_gallery_index", "load_query_model", "embed_images"),
    "sketch_query": ("SketchQueryResult", "query_image", "query_strokes", "sketch_query_settings"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
