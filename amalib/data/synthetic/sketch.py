"""The sketch renderer: the visible outlines of an object as wobbly dark strokes on white."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from amalib.data.synthetic.geometry import _inside, _object, _place, _resample

__all__ = ["render_sketch"]


def _runs(visible, closed):
    """Index arrays of the maximal runs of ``True`` in ``visible`` (cyclic if ``closed``)."""
    n = len(visible)
    if visible.all():
        return [np.arange(n)]
    if not visible.any():
        return []
    start = int(np.argmin(visible)) if closed else 0  # begin at a hidden point
    order = (np.arange(n) + start) % n if closed else np.arange(n)
    v = visible[order]
    runs, cur = [], []
    for i, flag in zip(order, v):
        if flag:
            cur.append(i)
        elif cur:
            runs.append(np.array(cur))
            cur = []
    if cur:
        runs.append(np.array(cur))
    return runs


def _humanise(pts, closed, rng, size):
    """Turn an exact polyline into a hand-drawn stroke: over/undershoot, wobble."""
    if closed:
        pts = np.roll(pts, -int(rng.integers(len(pts))), 0)
        n = len(pts)
        extra = rng.uniform(-0.06, 0.14)
        k = int(abs(extra) * n)
        if extra >= 0:
            pts = np.vstack([pts, pts[: k + 1]])
            drift = np.zeros(len(pts))
            drift[n:] = np.linspace(0, rng.uniform(-0.03, 0.03) * size, len(pts) - n)
        else:
            pts = pts[: max(n - k, 3)]
            drift = np.zeros(len(pts))
    else:
        length = np.linalg.norm(pts[-1] - pts[0]) + 1e-6
        for end in (0, -1):
            e = rng.uniform(-0.1, 0.15) * length
            nb = pts[1] if end == 0 else pts[-2]
            direction = pts[end] - nb
            direction = direction / (np.linalg.norm(direction) + 1e-9)
            if e > 0:
                tip = pts[end] + direction * e
                pts = np.vstack([tip[None], pts]) if end == 0 else np.vstack([pts, tip[None]])
            elif len(pts) > 6:
                cut = min(int(-e / (size * 0.012) + 0.5), len(pts) // 4)
                if cut:
                    pts = pts[cut:] if end == 0 else pts[:-cut]
        drift = np.zeros(len(pts))
    if len(pts) < 2:
        return pts
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    tangent = np.gradient(pts, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True) + 1e-9
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1)
    wobble = drift.copy()
    for amp, wave in ((rng.uniform(0.004, 0.016), rng.uniform(0.3, 0.8)),
                      (rng.uniform(0.001, 0.006), rng.uniform(0.05, 0.15))):  # fmt: skip
        wobble += amp * size * np.sin(2 * np.pi * s / (wave * size) + rng.uniform(0, 2 * np.pi))
    return pts + normal * wobble[:, None]


def render_sketch(class_name: str, rng: np.random.Generator, image_size: int = 64) -> Image.Image:
    """Render one hand-drawn-looking sketch of ``class_name`` with the given generator.

    Args:
        class_name: A grammar class, e.g. ``"circle_legs"``.
        rng: The instance's random generator.
        image_size: Side of the square output.

    Returns:
        An ``image_size × image_size`` RGB image: dark strokes on white, no fill.
    """
    body, part = class_name.split("_", 1)
    ss = 4
    c = image_size * ss
    layers = _object(body, part, rng)
    droppable = [i for i, lay in enumerate(layers) if lay.droppable]
    if droppable and rng.random() < 0.15:  # forget one element of a repeated part
        group = layers[droppable[int(rng.integers(len(droppable)))]].group
        layers = [lay for lay in layers if not (lay.droppable and lay.group == group)]
    size = _place(layers, rng, c, (0.65, 0.9), rot_deg=15, offset=0.4)
    # A slightly distorted hand: smooth warp of the whole drawing.
    amp, freq, phase = (
        rng.uniform(0, 0.03) * size,
        rng.uniform(0.5, 1.5) / size,
        rng.uniform(0, 6.3, 2),
    )

    def warp(p):
        return p + amp * np.sin(2 * np.pi * freq * p[:, ::-1] + phase)

    step = 1.5 * ss
    strokes = []
    single_line_sticks = rng.random() < 0.6
    for i, lay in enumerate(layers):
        later = [m.poly for m in layers[i + 1 :]]
        if lay.stick is not None and single_line_sticks:
            pts, closed = _resample(np.array(lay.stick), step, closed=False), False
        else:
            pts, closed = _resample(lay.poly, step, closed=True), True
        visible = np.ones(len(pts), bool)
        for poly in later:
            visible &= ~_inside(pts, poly)
        for run in _runs(visible, closed):
            if len(run) < 3:
                continue
            whole = closed and len(run) == len(pts)
            strokes.append(_humanise(warp(pts[run]), whole, rng, size))

    img = Image.new("L", (c, c), 255)
    d = ImageDraw.Draw(img)
    width = rng.uniform(0.9, 2.4) * ss
    ink = int(rng.uniform(0, 70))
    for stroke in strokes:
        w = max(1, int(round(width * rng.uniform(0.8, 1.2))))
        passes = 2 if rng.random() < 0.12 else 1
        for k in range(passes):
            pts = stroke + (rng.normal(0, 0.6 * ss, 2) if k else 0)
            d.line([tuple(p) for p in pts], fill=ink, width=w, joint="curve")
            for p in (pts[0], pts[-1]):  # round caps
                d.ellipse([p[0] - w / 2, p[1] - w / 2, p[0] + w / 2, p[1] + w / 2], fill=ink)
    img = img.resize((image_size, image_size), Image.Resampling.LANCZOS)
    return img.convert("RGB")
