"""amalib: Asymmetric Mutual Alignment for unsupervised zero-shot sketch-based image retrieval.

Importing :mod:`amalib` is cheap on purpose: sub-packages (``amalib.metrics``, ``amalib.data``,
``amalib.models``, ``amalib.losses``, ``amalib.train``, ``amalib.retrieval``, ``amalib.viz``) are
imported on demand, so ``import amalib.metrics`` never pulls in umap, faiss, matplotlib or timm.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
