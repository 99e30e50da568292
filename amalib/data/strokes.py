"""Hand-drawn strokes → a sketch image in the style of the benchmark's sketches.

A drawing is a list of **strokes**, each a polyline of ``(x, y)`` points in canvas pixel
coordinates (x to the right, y down), the form a drawing canvas hands over when the pen is
lifted (:func:`amalib.apps.sketch_pad`, notebook ``06_retrieval_evaluation.ipynb``).
:func:`render_strokes` draws them the way :func:`amalib.data.synthetic.render_sketch` draws the
embedded benchmark's sketches — dark strokes on white paper, round caps and joins, drawn at
4x and reduced with a Lanczos filter — so that the image a reader draws looks to the network
like the sketches it was evaluated on. :func:`example_strokes` gives a few drawings written in
code, for places where nobody can draw (a test, a notebook executed by CI).

Data knows no network: turning the image into features and ranking photos is
:mod:`amalib.retrieval.sketch_query`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "SKETCH_INK",
    "SKETCH_LINE_WIDTH",
    "EXAMPLE_SKETCHES",
    "as_polylines",
    "example_strokes",
    "load_strokes",
    "render_strokes",
    "save_strokes",
    "strokes_to_lists",
]

#: Stroke width in pixels of the output image: the middle of the generator's 0.9–2.4 px range
#: (``render_sketch`` draws ``U(0.9, 2.4)`` pixels wide at the image's own resolution).
SKETCH_LINE_WIDTH = 1.65
#: Grey level of the ink: the middle of the generator's 0–70 range (0 = black, 255 = paper).
SKETCH_INK = 35
#: Share of the image side the drawing's longer side fills when ``fit=True``: the middle of the
#: generator's 0.65–0.9 object size.
SKETCH_FILL = 0.78

_SUPERSAMPLE = 4


def as_polylines(strokes) -> list[np.ndarray]:
    """Check a drawing and return its non-empty strokes as ``(n_points, 2)`` float arrays.

    Args:
        strokes: A sequence of strokes; a stroke is a sequence of ``(x, y)`` pairs (a list of
            tuples, or an ``(n, 2)`` array). Strokes without points are dropped (a click that
            the canvas reported without a position).

    Raises:
        amalib.errors.InputError: (a ``ValueError``) the strokes are not a list, a stroke is not
            made of ``(x, y)`` number pairs, holds NaN or infinity, or the drawing has no point at
            all ("empty drawing").
    """
    from amalib.errors import InputError

    if strokes is None:
        strokes = []
    if isinstance(strokes, (str, bytes, dict)) or not hasattr(strokes, "__iter__"):
        raise InputError(f"strokes must be a list of strokes, each a list of [x, y] points, got "
                         f"{_short(strokes)}")
    polylines = []
    for i, stroke in enumerate(strokes):
        if isinstance(stroke, (str, bytes, dict)):
            points = None
        else:
            try:
                points = np.asarray(stroke, dtype=float)
            except (TypeError, ValueError):  # text or ragged lists where numbers should be
                points = None
        if points is not None and points.size == 0:
            continue
        if points is None or points.ndim != 2 or points.shape[1] != 2:
            got = _short(stroke) if points is None else f"an array of shape {points.shape}"
            raise InputError(f"stroke {i}: expected a list of [x, y] number pairs, got {got}")
        if not np.isfinite(points).all():
            raise InputError(f"stroke {i}: coordinates must be finite numbers")
        polylines.append(points)
    if not polylines:
        raise InputError("empty drawing: there is no stroke to render (draw something first)")
    return polylines


def _short(value, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _placement(polylines: list[np.ndarray], image_size: int, canvas_size, fit: bool,
               fill: float) -> tuple[float, np.ndarray]:
    """``(scale, offset)`` with ``image_point = canvas_point * scale + offset``."""
    if canvas_size is not None:
        w, h = (canvas_size, canvas_size) if np.isscalar(canvas_size) else canvas_size
        if min(w, h) <= 0:
            raise ValueError(f"canvas_size must be positive, got {canvas_size}")
        canvas_scale = image_size / max(w, h)
    else:
        canvas_scale = None
    if not fit:
        if canvas_scale is None:
            raise ValueError("fit=False maps the canvas onto the image: give canvas_size")
        # The canvas's centre goes to the image's centre (a non-square canvas keeps its shape).
        w, h = (canvas_size, canvas_size) if np.isscalar(canvas_size) else canvas_size
        return canvas_scale, image_size / 2 - canvas_scale * np.array([w / 2, h / 2])
    points = np.concatenate(polylines)
    low, high = points.min(0), points.max(0)
    extent = float((high - low).max())
    if extent > 0:
        scale = fill * image_size / extent
    else:  # a single dot: keep the canvas's scale, or draw it at the image's scale
        scale = canvas_scale if canvas_scale is not None else 1.0
    return scale, image_size / 2 - scale * (low + high) / 2


def render_strokes(
    strokes,
    *,
    image_size: int = 64,
    canvas_size: int | tuple[int, int] | None = None,
    fit: bool = True,
    fill: float = SKETCH_FILL,
    line_width: float = SKETCH_LINE_WIDTH,
    ink: int = SKETCH_INK,
) -> Image.Image:
    """Draw strokes as a benchmark-style sketch: dark lines on white, ``image_size`` square.

    Like :func:`amalib.data.synthetic.render_sketch`, the lines are drawn at 4x the output size
    with round caps and curved joins, then reduced with a Lanczos filter, which gives the same
    soft edges. ``line_width`` is measured in pixels of the *output* image, so a stroke is as
    wide as the benchmark's whatever the size of the canvas it was drawn on.

    Placement: with ``fit=True`` (the default) the drawing is centred and scaled so that its
    longer side fills ``fill`` of the image, as the generator places its objects (65–90 % of
    the side, near the centre): the network never saw a small drawing in a corner, and a reader
    should not have to draw at the right size to be understood. ``fit=False`` maps the canvas
    onto the image instead (the canvas's longer side to the image side, centres aligned), for
    strokes that are already where they should be.

    Args:
        strokes: Polylines of ``(x, y)`` canvas pixels (see :func:`as_polylines`).
        image_size: Side of the output in pixels (the benchmark's sketch size: 64 for the
            embedded benchmark, 256 for Sketchy).
        canvas_size: Side (or ``(width, height)``) of the canvas the strokes were drawn on;
            needed with ``fit=False``, and sets the scale of a drawing that is a single dot.
        fit: Centre and scale the drawing (see above).
        fill: Share of the image side the drawing fills with ``fit=True``.
        line_width: Stroke width in output pixels.
        ink: Grey level of the strokes, 0 (black) to 255 (white).

    Returns:
        An RGB :class:`PIL.Image.Image` of ``image_size × image_size``.

    Raises:
        ValueError: empty drawing, malformed strokes, or a non-positive size or width.
    """
    polylines = as_polylines(strokes)
    if image_size < 1 or line_width <= 0 or not 0 < fill <= 1:
        raise ValueError(f"need image_size >= 1, line_width > 0 and 0 < fill <= 1, got "
                         f"{image_size}, {line_width}, {fill}")
    scale, offset = _placement(polylines, image_size, canvas_size, fit, fill)
    ss = _SUPERSAMPLE
    img = Image.new("L", (image_size * ss, image_size * ss), 255)
    draw = ImageDraw.Draw(img)
    width = max(1, int(round(line_width * ss)))
    radius = width / 2
    for polyline in polylines:
        points = (polyline * scale + offset) * ss
        if len(points) > 1:
            draw.line([tuple(p) for p in points], fill=int(ink), width=width, joint="curve")
        for x, y in (points[0], points[-1]):  # round caps (and a dot for a single point)
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=int(ink))
    img = img.resize((image_size, image_size), Image.Resampling.LANCZOS)
    return img.convert("RGB")


# ----------------------------------------------------------------------------------------------
# Drawings written in code, for the static example (on a 256-pixel canvas, y down)


def _circle(cx, cy, rx, ry, start=0.0, stop=2 * np.pi, n=48):
    t = np.linspace(start, stop, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


def _circle_spikes() -> list[np.ndarray]:
    strokes = [_circle(128, 128, 62, 60)]
    for angle in np.linspace(0, 2 * np.pi, 8, endpoint=False) + 0.2:
        direction = np.array([np.cos(angle), np.sin(angle)])
        side = np.array([-direction[1], direction[0]])
        base = np.array([128.0, 128.0]) + 60 * direction
        strokes.append(np.stack([base + 14 * side, base + 34 * direction, base - 14 * side]))
    return strokes


def _crescent_plain() -> list[np.ndarray]:
    outer = _circle(128, 128, 90, 90, np.deg2rad(60), np.deg2rad(300))
    inner = _circle(160, 128, 70, 70, np.deg2rad(290), np.deg2rad(70), n=40)
    return [np.concatenate([outer, inner, outer[:1]])]


def _bar_wheels() -> list[np.ndarray]:
    body = np.array([[96, 30], [160, 30], [160, 190], [96, 190], [96, 30]], dtype=float)
    return [body, _circle(104, 204, 22, 22), _circle(152, 204, 22, 22)]


def _ellipse_hole() -> list[np.ndarray]:
    return [_circle(128, 128, 100, 56), _circle(128, 128, 28, 24)]


#: Drawings written in code, by the embedded benchmark's unseen class they depict.
EXAMPLE_SKETCHES = {
    "circle_spikes": _circle_spikes,
    "crescent_plain": _crescent_plain,
    "bar_wheels": _bar_wheels,
    "ellipse_hole": _ellipse_hole,
}


def example_strokes(name: str = "circle_spikes") -> list[np.ndarray]:
    """A drawing written in code, as strokes on a 256-pixel canvas.

    For the static example of the sketch pad (:func:`amalib.apps.static_example`),
    where nobody can draw: a few strokes of one of the embedded benchmark's unseen classes,
    deterministic, drawn the way a person would (an outline, then the parts).

    Args:
        name: One of :data:`EXAMPLE_SKETCHES` (``circle_spikes``, ``crescent_plain``,
            ``bar_wheels``, ``ellipse_hole``).

    Returns:
        A list of ``(n_points, 2)`` float arrays, canvas pixels.
    """
    if name not in EXAMPLE_SKETCHES:
        raise ValueError(f"no example drawing {name!r}; choose one of {sorted(EXAMPLE_SKETCHES)}")
    return [np.asarray(s, dtype=float) for s in EXAMPLE_SKETCHES[name]()]


def strokes_to_lists(strokes: Sequence) -> list[list[list[float]]]:
    """Strokes as plain nested lists of floats (for JSON), rounded to 0.1 pixel."""
    return [[[round(float(x), 1), round(float(y), 1)] for x, y in np.asarray(s, float)]
            for s in as_polylines(strokes)]


def save_strokes(path, strokes, *, canvas_size: int | tuple[int, int] | None = None) -> Path:
    """Write a drawing as JSON: ``{"canvas_size": ..., "strokes": [[[x, y], ...], ...]}``.

    The file :func:`load_strokes` and ``amalib retrieve --strokes`` read; the sketch pad writes
    it with ``pad.save("drawing.json")``.
    """
    path = Path(path)
    size = list(canvas_size) if isinstance(canvas_size, (tuple, list)) else canvas_size
    path.write_text(json.dumps({"canvas_size": size, "strokes": strokes_to_lists(strokes)}) + "\n")
    return path


def load_strokes(path) -> tuple[list[np.ndarray], int | tuple[int, int] | None]:
    """Read a drawing written by :func:`save_strokes` (or a bare JSON list of strokes).

    Returns:
        ``(strokes, canvas_size)``; ``canvas_size`` is None when the file does not say.

    Raises:
        FileNotFoundError: no such file.
        amalib.errors.InputError: (a ``ValueError``) the file is not a drawing: not JSON, strokes
            of the wrong shape, a bad canvas size (the message names the file and the form
            expected).
    """
    from amalib.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"strokes file not found: {path}")
    form = ('a drawing is {"canvas_size": 256, "strokes": [[[x, y], ...], ...]}, as the sketch '
            "pad's pad.save() writes it")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a JSON drawing (not UTF-8 text); {form}") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not JSON ({err}); {form}") from None
    canvas_size = None
    if isinstance(content, dict):
        if "strokes" not in content:
            raise InputError(f'{path}: expected {{"strokes": [[[x, y], ...], ...]}}, found the '
                             f"keys {sorted(content)}; {form}")
        canvas_size = content.get("canvas_size")
        if isinstance(canvas_size, list):
            canvas_size = tuple(canvas_size)
        content = content["strokes"]
    if canvas_size is not None and not _is_canvas_size(canvas_size):
        raise InputError(f"{path}: canvas_size must be a positive number or [width, height], got "
                         f"{_short(canvas_size)}; {form}")
    try:
        return as_polylines(content), canvas_size
    except ValueError as err:
        raise InputError(f"{path}: {err}; {form}") from None


def _is_canvas_size(value) -> bool:
    def positive(x) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) and x > 0

    if isinstance(value, tuple):
        return len(value) == 2 and all(positive(x) for x in value)
    return positive(value)
