"""Experiments built from the training and retrieval layers: the demo and the ablation."""

from __future__ import annotations

from amalib._lazy import lazy_exports

_EXPORTS = {
    "demo": ("run_demo",),
    "ablation": ("run_ablation", "format_ablation", "load_ablation_results"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
