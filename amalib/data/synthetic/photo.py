"""The photo renderer: a filled, coloured, shaded object over a cluttered background."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from amalib.data.synthetic.geometry import _object, _place

__all__ = ["PHOTO_STYLES", "BACKGROUND_KINDS", "render_photo"]


def _random_colour(rng, sat=(0.25, 1.0), val=(0.25, 1.0)):
    h, s, v = rng.uniform(), rng.uniform(*sat), rng.uniform(*val)
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, dtype=np.float32) * np.float32(255.0)


def _blob(rng, cx, cy, r):
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    rad = np.ones_like(t)
    for k in (2, 3, 5):
        rad += rng.uniform(0.08, 0.3) * np.sin(k * t + rng.uniform(0, 2 * np.pi))
    return [(cx + r * a * np.cos(b), cy + r * a * np.sin(b)) for a, b in zip(rad, t)]


#: Photo styles of :func:`render_photo` (``generate_mini_benchmark(photo_style=...)``).
PHOTO_STYLES = ("busy", "calm")

#: The photo background kinds, in the order of :func:`_background`'s draw.
BACKGROUND_KINDS = ("gradient", "colour noise", "patches", "stripes")


def _background(rng, c):
    """One random background of side ``c`` and its kind (an index into BACKGROUND_KINDS)."""
    yy = np.arange(c, dtype=np.float32)[:, None] / c
    xx = np.arange(c, dtype=np.float32)[None, :] / c
    kind = int(rng.integers(4))
    if kind == 0:  # linear gradient
        a = rng.uniform(0, 2 * np.pi)
        g = (np.cos(a) * (xx - 0.5) + np.sin(a) * (yy - 0.5) + 0.71) / 1.42
        bg = _random_colour(rng) * (1 - g[..., None]) + _random_colour(rng) * g[..., None]
    elif kind == 1:  # smooth colour noise
        k = int(rng.integers(2, 6))
        small = rng.uniform(0, 255, (k, k, 3)).astype(np.uint8)
        bg = np.asarray(Image.fromarray(small).resize((c, c), Image.Resampling.BICUBIC), np.float32)
    elif kind == 2:  # coloured patches
        im = Image.new("RGB", (c, c), tuple(int(v) for v in _random_colour(rng)))
        d = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(4, 10))):
            x, y = rng.uniform(-0.2, 1.0, 2) * c
            w, h = rng.uniform(0.15, 0.6, 2) * c
            box = [x, y, x + w, y + h]
            col = tuple(int(v) for v in _random_colour(rng))
            (d.rectangle if rng.random() < 0.5 else d.ellipse)(box, fill=col)
        bg = np.asarray(im.filter(ImageFilter.GaussianBlur(c / 40)), np.float32)
    else:  # soft stripes
        a, f = rng.uniform(0, np.pi), rng.uniform(2, 7)
        g = 0.5 + 0.5 * np.sin(2 * np.pi * f * (np.cos(a) * xx + np.sin(a) * yy))
        bg = _random_colour(rng) * (1 - g[..., None]) + _random_colour(rng) * g[..., None]
    return np.ascontiguousarray(bg, dtype=np.float32), kind


def _clutter(img: Image.Image, rng, c, n):
    d = ImageDraw.Draw(img)
    for _ in range(n):
        col = tuple(int(v) for v in _random_colour(rng))
        x, y = rng.uniform(0, 1, 2) * c
        if rng.random() < 0.6:
            d.polygon(_blob(rng, x, y, rng.uniform(0.04, 0.1) * c), fill=col)
        else:
            a, length = rng.uniform(0, np.pi), rng.uniform(0.15, 0.4) * c
            x2, y2 = x + length * np.cos(a), y + length * np.sin(a)
            d.line([(x, y), (x2, y2)], fill=col, width=max(1, int(rng.uniform(0.01, 0.04) * c)))


def render_photo(class_name: str, rng: np.random.Generator, image_size: int = 64, *,
                 style: str = "busy", info: dict | None = None) -> Image.Image:
    """Render one photo of ``class_name`` (``"<body>_<part>"``) with the given generator.

    Args:
        class_name: A grammar class, e.g. ``"circle_legs"``.
        rng: The instance's random generator (every free parameter is drawn from it).
        image_size: Side of the square RGB output.
        style: One of :data:`PHOTO_STYLES`. ``"busy"`` (this function's default, and the
            mini-benchmark's photos until the ``mini`` config chose calm): full-contrast
            backgrounds, up to three clutter items, objects 50-80 % of the image, an occluder in
            30 % of the photos. ``"calm"`` (the ``mini`` config's, and
            :func:`generate_mini_benchmark`'s default): the background's contrast cut to 15-40 %,
            clutter in 30 % of the photos (one item), objects 60-90 % placed closer to the
            centre, occluders in 10 %. The background kind is drawn first and does not depend
            on the style.
        info: If given, ``info["background"]`` is set to the background kind (an index into
            :data:`BACKGROUND_KINDS`), a nuisance factor for probing features. The image is the
            same either way.

    Returns:
        An ``image_size × image_size`` RGB :class:`PIL.Image.Image`.
    """
    if style not in PHOTO_STYLES:
        raise ValueError(f"unknown photo style {style!r}; choose one of {PHOTO_STYLES}")
    body, part = class_name.split("_", 1)
    ss = 2
    c = image_size * ss
    layers = _object(body, part, rng)
    bg, kind = _background(rng, c)
    if info is not None:
        info["background"] = kind
    if style == "calm":
        # The backdrop pulled towards its mean colour, little clutter, a larger object: the
        # object's shape is the most salient content of a crop, as in object-centric photos.
        mean = bg.mean((0, 1), keepdims=True)
        bg = mean + rng.uniform(0.15, 0.4) * (bg - mean)
        n_clutter, size_range, offset, p_occluder = int(rng.random() < 0.3), (0.6, 0.9), 0.5, 0.1
    else:
        n_clutter, size_range, offset, p_occluder = int(rng.integers(0, 4)), (0.5, 0.8), 0.8, 0.3
    bg = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    _clutter(bg, rng, c, n_clutter)
    size = _place(layers, rng, c, size_range, rot_deg=25, offset=offset)

    label = Image.new("L", (c, c), 0)
    d = ImageDraw.Draw(label)
    two_tone = rng.random() < 0.4
    for lay in layers:
        value = 0 if lay.hole else (2 if two_tone and lay.role == "part" else 1)
        d.polygon([tuple(p) for p in lay.poly], fill=value)
    lab = np.asarray(label)
    mask = lab > 0

    bg_arr = np.asarray(bg, np.float32)
    bg_mean = bg_arr[mask].mean(0) if mask.any() else bg_arr.mean((0, 1))
    for _ in range(6):  # keep the object visible against its own surroundings
        base = _random_colour(rng)
        if np.abs(base - bg_mean).sum() > 90:
            break
    colours = np.stack([base, base, _random_colour(rng)])
    obj = colours[lab].astype(np.float32)

    yy = np.arange(c, dtype=np.float32)[:, None]
    xx = np.arange(c, dtype=np.float32)[None, :]
    gx, gy = (xx - c / 2) / (size / 2), (yy - c / 2) / (size / 2)
    tex = rng.random()
    if tex < 0.3:  # stripes of a second colour
        a, f = rng.uniform(0, np.pi), rng.uniform(1.5, 4)
        s = np.sin(np.pi * f * (np.cos(a) * gx + np.sin(a) * gy)) > 0.3
        obj = np.where(s[..., None], obj * 0.4 + _random_colour(rng) * 0.6, obj)
    elif tex < 0.5:  # spots
        spots = Image.new("L", (c, c), 0)
        ds = ImageDraw.Draw(spots)
        for _ in range(int(rng.integers(4, 12))):
            x, y = rng.uniform(0, c, 2)
            r = rng.uniform(0.03, 0.08) * size
            ds.ellipse([x - r, y - r, x + r, y + r], fill=255)
        s = np.asarray(spots) > 0
        obj = np.where(s[..., None], obj * 0.5 + _random_colour(rng) * 0.5, obj)
    a = rng.uniform(0, 2 * np.pi)
    shade = 1 + rng.uniform(0.15, 0.45) * (np.cos(a) * gx + np.sin(a) * gy)
    rim = np.asarray(
        Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.GaussianBlur(size / 12)),
        np.float32,
    )
    shade = shade * (1 - rng.uniform(0.2, 0.5) * (1 - rim / 255))
    hx, hy = -np.cos(a) * 0.35, -np.sin(a) * 0.35
    spec = rng.uniform(0, 90) * np.exp(-((gx - hx) ** 2 + (gy - hy) ** 2) / 0.08)
    obj = (
        obj * shade[..., None]
        + spec[..., None]
        + 6 * rng.standard_normal(obj.shape, dtype=np.float32)
    )
    out = np.where(mask[..., None], obj, bg_arr)
    img = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))

    if rng.random() < p_occluder:  # an occluder in front, near the object's outline
        solid = np.concatenate([lay.poly for lay in layers if not lay.hole])
        p = solid[int(rng.integers(len(solid)))]
        col = tuple(int(v) for v in _random_colour(rng))
        ImageDraw.Draw(img).polygon(_blob(rng, p[0], p[1], rng.uniform(0.1, 0.17) * size), fill=col)

    img = img.resize((image_size, image_size), Image.Resampling.LANCZOS)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.7)))
    arr = np.asarray(img, np.float32) + rng.uniform(0, 8) * rng.standard_normal(
        (image_size, image_size, 3), dtype=np.float32
    )
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
