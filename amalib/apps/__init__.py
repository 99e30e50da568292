"""Interactive applications: the sketch pad (draw a sketch in Jupyter, see what it retrieves).

:func:`sketch_pad` and :func:`static_example` are re-exported lazily: ``amalib.apps.sketch_widget``
imports ipycanvas only when it builds a live pad. The command line is :mod:`amalib.cli`.
"""

from __future__ import annotations

from amalib._lazy import lazy_exports

_EXPORTS = {
    "sketch_widget": ("SketchPad", "live_frontend", "sketch_pad", "static_example"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
