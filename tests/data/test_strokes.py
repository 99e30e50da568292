"""Strokes → benchmark-style sketch image: where the ink lands, how it looks, what is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from amalib.data.strokes import (
    EXAMPLE_SKETCHES,
    SKETCH_INK,
    as_polylines,
    example_strokes,
    load_strokes,
    render_strokes,
    save_strokes,
    strokes_to_lists,
)


def grey(image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=float)


def test_horizontal_line_lands_where_drawn_without_fit():
    # A 64-pixel canvas mapped onto a 64-pixel image: canvas pixels are image pixels.
    img = render_strokes([[(10, 32), (54, 32)]], image_size=64, canvas_size=64, fit=False)
    assert img.mode == "RGB" and img.size == (64, 64)
    g = grey(img)
    assert g[32, 12:52].max() < 128  # ink all along the line
    assert g[20, :].min() == 255 and g[44, :].min() == 255  # paper above and below
    assert g[32, :6].min() == 255 and g[32, 59:].min() == 255  # nothing past the ends
    column = g[:, 32]
    assert 1 <= (column < 200).sum() <= 4  # about SKETCH_LINE_WIDTH (1.65 px) wide


def test_canvas_scale_without_fit():
    # A 256-pixel canvas onto a 64-pixel image: (128, 40)-(128, 216) becomes x = 32, y 10-54.
    g = grey(render_strokes([[(128, 40), (128, 216)]], image_size=64, canvas_size=256, fit=False))
    assert g[12:52, 32].max() < 128
    assert g[12:52, 20].min() == 255 and g[:6, 32].min() == 255


def test_fit_centres_and_scales_a_small_drawing():
    # A small square in a canvas corner fills `fill` of the image, centred.
    square = [(5, 5), (25, 5), (25, 25), (5, 25), (5, 5)]
    g = grey(render_strokes([square], image_size=64, canvas_size=256, fill=0.75))
    rows, cols = np.nonzero(g < 200)
    side = 0.75 * 64
    for idx in (rows, cols):
        assert abs((idx.min() + idx.max()) / 2 - 31.5) <= 1.0  # centred
        assert abs((idx.max() - idx.min()) - side) <= 3.0  # scaled to 75 % of the side
    assert g[32, 32] == 255  # an outline, not a fill


def test_single_dot_and_ink_level():
    g = grey(render_strokes([[(100, 100)]], image_size=64, canvas_size=256, line_width=6))
    assert abs(g[32, 32] - SKETCH_INK) <= 20  # Lanczos rings a little around the ink level
    assert g[5, 5] == 255


def test_thicker_pen_gives_more_ink():
    line = [[(0, 0), (100, 0)]]
    thin = (grey(render_strokes(line, line_width=1.0)) < 200).sum()
    thick = (grey(render_strokes(line, line_width=3.0)) < 200).sum()
    assert thick > 2 * thin


def test_looks_like_the_generators_sketches():
    """Same paper, about the same amount of ink as render_sketch's ellipses with a hole."""
    from amalib.data.synthetic import render_sketch

    ours = grey(render_strokes(example_strokes("ellipse_hole"), image_size=64, canvas_size=256))
    theirs = [grey(render_sketch("ellipse_hole", np.random.default_rng(i), 64))
              for i in range(20)]
    ink = (ours < 200).mean()
    ink_theirs = np.mean([(t < 200).mean() for t in theirs])
    assert ours[0, 0] == 255 and ours.max() == 255
    assert ink_theirs / 2 < ink < ink_theirs * 2


@pytest.mark.parametrize("name", sorted(EXAMPLE_SKETCHES))
def test_example_drawings_render(name):
    strokes = example_strokes(name)
    assert all(s.ndim == 2 and s.shape[1] == 2 for s in strokes)
    assert all((s >= 0).all() and (s <= 256).all() for s in strokes)  # on the 256 px canvas
    assert (grey(render_strokes(strokes, canvas_size=256)) < 200).mean() > 0.02


def test_unknown_example():
    with pytest.raises(ValueError, match="choose one of"):
        example_strokes("unicorn")


@pytest.mark.parametrize("strokes", [[], [[]], None, [np.zeros((0, 2))]])
def test_empty_drawing_is_refused(strokes):
    with pytest.raises(ValueError, match="empty drawing"):
        render_strokes(strokes)


def test_empty_strokes_are_dropped():
    assert len(as_polylines([[], [(1, 2), (3, 4)], []])) == 1


@pytest.mark.parametrize("bad, message", [([[(1, 2, 3)]], "shape"),
                                          ([[(0, 0), (np.nan, 1)]], "finite"),
                                          ([[1, 2]], "shape")])
def test_malformed_strokes(bad, message):
    with pytest.raises(ValueError, match=message):
        as_polylines(bad)


def test_fit_false_needs_the_canvas_size():
    with pytest.raises(ValueError, match="canvas_size"):
        render_strokes([[(0, 0), (5, 5)]], fit=False)


def test_save_and_load_round_trip(tmp_path):
    strokes = [[(1.04, 2.0), (3.0, 4.0)], [(5.0, 6.0)]]
    path = save_strokes(tmp_path / "d.json", strokes, canvas_size=256)
    loaded, size = load_strokes(path)
    assert size == 256
    assert [s.tolist() for s in loaded] == [[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0]]]
    assert strokes_to_lists(loaded) == json.loads(path.read_text())["strokes"]


def test_load_a_bare_list_and_bad_files(tmp_path):
    (tmp_path / "bare.json").write_text("[[[0, 0], [10, 10]]]")
    strokes, size = load_strokes(tmp_path / "bare.json")
    assert size is None and strokes[0].shape == (2, 2)
    (tmp_path / "other.json").write_text('{"lines": []}')
    with pytest.raises(ValueError, match="strokes"):
        load_strokes(tmp_path / "other.json")
    (tmp_path / "empty.json").write_text('{"strokes": []}')
    with pytest.raises(ValueError, match="empty drawing"):
        load_strokes(tmp_path / "empty.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="not JSON"):
        load_strokes(tmp_path / "broken.json")
    with pytest.raises(FileNotFoundError):
        load_strokes(tmp_path / "missing.json")
