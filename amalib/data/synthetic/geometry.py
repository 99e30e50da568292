"""Shape geometry: one instance of a class as ordered polygon layers, placed on a canvas.

An object is an ordered list of layers (polygons in object coordinates, y down); both renderers
draw the same layers, each in its own way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class _Layer:
    poly: np.ndarray  # (N, 2)
    hole: bool = False  # cuts away what was drawn before it
    stick: tuple | None = None  # (p0, p1): a thin part a sketch may draw as a single line
    role: str = "part"  # "body" or "part" (photos may colour parts differently)
    group: int = 0  # elements of one part rule share a group
    droppable: bool = False  # a sketcher may forget it


def _ellipse(cx, cy, rx, ry, n=72):
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


def _regular(n, r, rot=0.0):
    t = rot - np.pi / 2 + 2 * np.pi * np.arange(n) / n
    return np.stack([r * np.cos(t), r * np.sin(t)], 1)


def _rect(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


def _stick(p0, p1, half_width):
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    n = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-9) * half_width
    return np.stack([p0 + n, p1 + n, p1 - n, p0 - n])


def _body(name: str, rng: np.random.Generator):
    """Return ``(polygon, core)``; ``core = (cx, cy, r)`` is a disc well inside the body."""
    u = rng.uniform
    if name == "circle":
        ry = u(0.9, 1.1)
        return _ellipse(0, 0, 1, ry), (0.0, 0.0, 0.9 * min(1, ry))
    if name == "ellipse":
        ry = u(0.45, 0.62)
        return _ellipse(0, 0, 1, ry), (0.0, 0.0, 0.85 * ry)
    if name == "square":
        a = u(0.85, 1.15)
        return _rect(-1, -a, 1, a), (0.0, 0.0, 0.85 * min(1, a))
    if name == "bar":
        w = u(0.36, 0.5)
        return _rect(-w, -1, w, 1), (0.0, u(-0.3, 0.3), 0.8 * w)
    if name == "triangle":
        w, h = u(0.85, 1.15), u(0.8, 1.0)
        poly = np.array([[0, -h], [w, h * 0.8], [-w, h * 0.8]])
        inr = w * 1.8 * h / (w + np.hypot(w, 1.8 * h))
        return poly, (0.0, h * 0.8 - inr, 0.85 * inr)
    if name == "star":
        n, r_in = int(rng.integers(5, 7)), u(0.4, 0.52)
        t = -np.pi / 2 + np.pi * np.arange(2 * n) / n
        r = np.where(np.arange(2 * n) % 2 == 0, 1.0, r_in)
        return np.stack([r * np.cos(t), r * np.sin(t)], 1), (0.0, 0.0, 0.85 * r_in)
    if name == "hexagon":
        return _regular(6, 1.0, rot=u(0, np.pi / 3)), (0.0, 0.0, 0.8)
    if name == "cross":
        a = u(0.27, 0.37)
        poly = np.array(
            [[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a], [a, 1], [-a, 1], [-a, a],
             [-1, a], [-1, -a], [-a, -a]]
        )  # fmt: skip
        return poly, (0.0, 0.0, 0.95 * a)
    if name == "crescent":
        d, r2 = u(0.38, 0.5), u(0.8, 0.9)
        x = (1 + d * d - r2 * r2) / (2 * d)
        phi, psi = np.arccos(x), np.arctan2(np.sqrt(1 - x * x), x - d)
        outer = np.linspace(phi, 2 * np.pi - phi, 48)
        inner = np.linspace(2 * np.pi - psi, psi, 40)
        poly = np.concatenate(
            [np.stack([np.cos(outer), np.sin(outer)], 1),
             np.stack([d + r2 * np.cos(inner), r2 * np.sin(inner)], 1)]
        )  # fmt: skip
        thick = 1 + d - r2
        return poly, (-1 + thick / 2, 0.0, 0.42 * thick)
    if name == "heart":
        t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        w = u(0.9, 1.1)
        x = w * 16 * np.sin(t) ** 3 / 16
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)) / 16
        return np.stack([x, y], 1), (0.0, 0.0, 0.45)
    if name == "diamond":
        w = u(0.6, 0.8)
        inr = w / np.hypot(w, 1.0)
        return np.array([[0, -1], [w, 0], [0, 1], [-w, 0]]), (0.0, 0.0, 0.8 * inr)
    if name == "arrow":
        sw, hh, x0 = u(0.14, 0.24), u(0.45, 0.62), u(0.0, 0.3)
        poly = np.array([[-1, -sw], [x0, -sw], [x0, -hh], [1, 0], [x0, hh], [x0, sw], [-1, sw]])
        return poly, (x0 + 0.25 * (1 - x0), 0.0, 0.5 * hh * (1 - x0) * 0.8)
    if name == "house":
        w, eave = u(0.7, 0.95), u(-0.25, 0.1)
        poly = np.array([[-w, 1], [w, 1], [w, eave], [0, -1], [-w, eave]])
        return poly, (0.0, (1 + eave) / 2, 0.8 * min(w, (1 - eave) / 2))
    if name == "trapezoid":
        top, h = u(0.35, 0.6), u(0.5, 0.72)
        return np.array([[-top, -h], [top, -h], [1, h], [-1, h]]), (0.0, 0.1 * h, 0.8 * h)
    if name == "dome":
        ry = u(0.7, 1.0)
        t = np.linspace(np.pi, 2 * np.pi, 40)
        poly = np.stack([np.cos(t), ry * np.sin(t) + ry / 2], 1)
        return poly, (0.0, 0.0, 0.45 * ry)
    raise ValueError(f"unknown body {name!r}")


def _edge_hits(poly, value, axis):
    """Coordinates (along the other axis) where the line ``coord[axis] == value`` meets ``poly``."""
    p, q = poly, np.roll(poly, -1, 0)
    lo, hi = np.minimum(p[:, axis], q[:, axis]), np.maximum(p[:, axis], q[:, axis])
    m = (lo <= value) & (hi > value)
    if not m.any():
        i = int(np.argmin(np.abs(poly[:, axis] - value)))
        return poly[i : i + 1, 1 - axis]
    t = (value - p[m, axis]) / (q[m, axis] - p[m, axis])
    return p[m, 1 - axis] + t * (q[m, 1 - axis] - p[m, 1 - axis])


def _inside(points, poly):
    """Even-odd point-in-polygon test, vectorised: ``(M, 2), (N, 2) -> (M,) bool``."""
    x, y = points[:, :1], points[:, 1:2]
    x1, y1 = poly[:, 0], poly[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    crosses = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return ((crosses & (x < x_at)).sum(1) % 2) == 1


def _resample(pts, step, closed):
    pts = np.vstack([pts, pts[:1]]) if closed else pts
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    n = max(int(s[-1] / step), 4)
    t = np.linspace(0, s[-1], n, endpoint=not closed)
    return np.stack([np.interp(t, s, pts[:, 0]), np.interp(t, s, pts[:, 1])], 1)


def _object(body: str, part: str, rng: np.random.Generator) -> list[_Layer]:
    """Sample one instance of class ``body_part`` as ordered layers, normalised to [-1, 1]²."""
    u = rng.uniform
    poly, (cx, cy, cr) = _body(body, rng)
    x0, y0 = poly.min(0)
    x1, y1 = poly.max(0)
    half_w = (x1 - x0) / 2
    xc = (x0 + x1) / 2
    back: list[_Layer] = []
    front: list[_Layer] = []
    if part == "legs":
        n = int(rng.integers(2, 5))
        xs = xc + np.linspace(-0.6, 0.6, n) * half_w + u(-0.05, 0.05, n)
        length, hw = u(0.35, 0.6), u(0.045, 0.075)
        for i, x in enumerate(xs):
            yb = _edge_hits(poly, x, 0).max()
            splay = (x - xc) * u(0.0, 0.35)
            p0, p1 = (x, yb - 0.2), (x + splay, yb + length)
            back.append(_Layer(_stick(p0, p1, hw), stick=(p0, p1), group=i, droppable=n >= 3))
    elif part == "spikes":
        n = int(rng.integers(6, 10))
        ring = _resample(poly, 0.02, closed=True)
        idx = ((np.arange(n) / n + u()) * len(ring)).astype(int) % len(ring)
        length, hw = u(0.3, 0.42), u(0.09, 0.13)
        for i, j in enumerate(idx):
            p, tangent = ring[j], ring[(j + 2) % len(ring)] - ring[j - 2]
            tangent = tangent / (np.linalg.norm(tangent) + 1e-9)
            normal = np.array([tangent[1], -tangent[0]])
            if _inside((p + 0.05 * normal)[None], poly)[0]:
                normal = -normal
            base = p - 0.06 * normal
            tri = np.stack([base + hw * tangent, p + length * normal, base - hw * tangent])
            back.append(_Layer(tri, group=i, droppable=True))
    elif part == "hole":
        r = cr * u(0.5, 0.7)
        front.append(_Layer(_ellipse(cx, cy, r * u(0.85, 1.15), r), hole=True))
    elif part == "handle":
        yh = cy + u(-0.15, 0.15)
        xr = _edge_hits(poly, yh, 1).max()
        big, ratio = u(0.38, 0.52), u(0.5, 0.65)
        ry = big * u(0.9, 1.3)
        back.append(_Layer(_ellipse(xr + big * 0.3, yh, big, ry)))
        back.append(_Layer(_ellipse(xr + big * 0.3, yh, big * ratio, ry * ratio), hole=True))
    elif part == "wheels":
        r, spread = u(0.2, 0.3), u(0.45, 0.7)
        for i, x in enumerate((xc - spread * half_w, xc + spread * half_w)):
            yb = _edge_hits(poly, x, 0).max()
            front.append(_Layer(_ellipse(x, yb + r * 0.35, r, r, n=40), group=i))
    elif part == "ears":
        h, hw, spread = u(0.3, 0.48), u(0.12, 0.2), u(0.35, 0.6)
        for i, s in enumerate((-1, 1)):
            x = xc + s * spread * half_w
            yt = _edge_hits(poly, x, 0).min()
            tip = (x + s * u(0.0, 0.15), yt - h)
            back.append(_Layer(np.array([[x - hw, yt + 0.12], tip, [x + hw, yt + 0.12]]), group=i))
    elif part == "antenna":
        n = int(rng.integers(1, 3))
        xs = [xc + u(-0.15, 0.15) * half_w] if n == 1 else [xc - 0.35 * half_w, xc + 0.35 * half_w]
        length, hw, ball = u(0.4, 0.6), u(0.04, 0.06), u(0.09, 0.13)
        for i, x in enumerate(xs):
            yt = _edge_hits(poly, x, 0).min()
            lean = (x - xc) * u(0.3, 0.8) + u(-0.08, 0.08)
            p0, p1 = (x, yt + 0.15), (x + lean, yt - length)
            back.append(_Layer(_stick(p0, p1, hw), stick=(p0, p1), group=i))
            back.append(_Layer(_ellipse(p1[0], p1[1], ball, ball, n=28), group=i))
    elif part == "stacked":
        small, _ = _body(body, rng)
        s = u(0.5, 0.65)
        small = small * s
        top = _edge_hits(poly, xc, 0).min()
        small = small + [xc - (small[:, 0].max() + small[:, 0].min()) / 2, top - small[:, 1].max()]
        small[:, 1] += 0.12
        back.append(_Layer(small))
    elif part == "twin":
        other, _ = _body(body, rng)
        other = other * u(0.85, 1.0)
        other[:, 0] += u(0.7, 0.9) * 2 * half_w
        other[:, 1] += u(-0.15, 0.15)
        back.append(_Layer(other))
    elif part != "plain":
        raise ValueError(f"unknown part rule {part!r}")
    layers = back + [_Layer(poly, role="body")] + front
    # Normalise: centre the solid extent and scale its longer side to 2.
    allpts = np.concatenate([lay.poly for lay in layers if not lay.hole])
    lo, hi = allpts.min(0), allpts.max(0)
    centre, scale = (lo + hi) / 2, 2.0 / (hi - lo).max()
    for lay in layers:
        lay.poly = (lay.poly - centre) * scale
        if lay.stick is not None:
            lay.stick = tuple((np.asarray(p) - centre) * scale for p in lay.stick)
    return layers


def _place(layers, rng, canvas, size_range, rot_deg, offset):
    """Rotate, mirror, scale and translate layers into canvas pixel coordinates (in place)."""
    theta = np.deg2rad(rng.uniform(-rot_deg, rot_deg))
    mirror = -1.0 if rng.random() < 0.5 else 1.0
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    size = rng.uniform(*size_range) * canvas
    m = rot @ np.diag([mirror, 1.0]) * (size / 2)
    slack = max(canvas - size, 0) / 2
    centre = canvas / 2 + rng.uniform(-offset, offset, 2) * slack
    for lay in layers:
        lay.poly = lay.poly @ m.T + centre
        if lay.stick is not None:
            lay.stick = tuple(np.asarray(p) @ m.T + centre for p in lay.stick)
    return size
