"""Interactive applications: the sketch pad (draw a sketch in Jupyter, see what it retrieves).

:func:`sketch_pad` and :func:`static_example` (module :mod:`amalib.apps.sketch_widget`) are
re-exported lazily, and ipycanvas is imported only when a live pad is built. The command line
is :mod:`amalib.cli`.
"""

from __future__ import annotations

from amalib._lazy import lazy_exports

_EXPORTS = {
    "sketch_widget": ("SketchPad", "live_frontend", "sketch_pad", "static_example"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
