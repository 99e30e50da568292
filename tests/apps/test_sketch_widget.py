"""The sketch pad: static example, results HTML, pen events through the canvas, frontend guess."""

from __future__ import annotations

import re
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from amalib.apps import sketch_widget
from amalib.apps.sketch_widget import (
    SketchQueryFigure,
    live_frontend,
    plot_sketch_query,
    results_html,
    sketch_pad,
    static_example,
)
from amalib.data.strokes import example_strokes, load_strokes
from amalib.data.transforms import eval_transform
from amalib.retrieval.index import GalleryIndex
from amalib.retrieval.sketch_query import encode_image, query_strokes

CLASSES = ["ellipse_hole", "bar_wheels"]


class PixelModel(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(3 * 16 * 16, 10)

    def forward(self, x):
        return self.proj(x.flatten(1))


@pytest.fixture
def setup(tmp_path):
    """A model, its transform and a six-photo gallery of two classes (the example's first)."""
    from amalib.data.synthetic import render_photo

    model, tf = PixelModel(), eval_transform(16, 16)
    paths, labels = [], []
    for i in range(6):
        label = i % 2
        path = tmp_path / f"{CLASSES[label]}_{i:04d}.png"
        render_photo(CLASSES[label], np.random.default_rng(i), 32).save(path)
        paths.append(path)
        labels.append(label)
    feats = torch.stack([encode_image(model, Image.open(p), tf) for p in paths])
    return {"model": model, "tf": tf, "features": feats, "paths": paths,
            "labels": np.array(labels)}


def common(setup, **extra):
    return dict(k=4, class_names=CLASSES, transform=setup["tf"], image_size=32, **extra)


def test_static_example_figure_and_text(setup):
    out = static_example(setup["model"], setup["features"], setup["paths"], setup["labels"],
                         **common(setup))
    assert isinstance(out, SketchQueryFigure)
    assert out.jpeg[:3] == b"\xff\xd8\xff" and out._repr_jpeg_() == out.jpeg
    text = repr(out)
    assert text.startswith("sketch pad, example drawing (strokes written in code), top-4")
    assert text.count("cosine") == 4 and "hits:" in text and "ellipse_hole" in text
    assert str(setup["paths"][0].parent) not in text
    # The example's class is in the gallery: hits are marked against it.
    np.testing.assert_array_equal(out.result.hits, out.result.labels == 0)
    again = static_example(setup["model"], setup["features"], setup["paths"], setup["labels"],
                           **common(setup))
    assert repr(again) == text  # deterministic, as nbval needs


def test_static_example_with_own_strokes_and_unknown_class(setup):
    strokes = [[(20, 20), (200, 200)]]
    out = static_example(setup["model"], setup["features"], setup["paths"], setup["labels"],
                         strokes=strokes, **common(setup))
    assert out.result.hits is None and out.strokes is strokes
    expected = query_strokes(setup["model"], strokes, GalleryIndex.build(
        setup["features"], setup["paths"], labels=setup["labels"]), transform=setup["tf"], k=4,
        image_size=32, canvas_size=256)
    np.testing.assert_array_equal(out.result.indices, expected.indices)


def test_settings_from_the_model_input_size(setup):
    """Without config or transform, the sketch is resized to the model's input size."""
    from amalib.models import create_vit

    vit = create_vit("vit_micro", patch_size=8, img_size=32).eval()
    with torch.no_grad():
        feats = vit(torch.randn(6, 3, 32, 32))
    out = static_example(vit, feats, setup["paths"], setup["labels"], k=2)
    assert len(out.result) == 2
    with pytest.raises(ValueError, match="config"):
        static_example(setup["model"], setup["features"], setup["paths"], k=2)


def test_plot_sketch_query_frames_hits_and_misses(setup):
    gallery = GalleryIndex.build(setup["features"], setup["paths"], labels=setup["labels"],
                                 class_names=CLASSES)
    strokes = example_strokes("ellipse_hole")
    result = query_strokes(setup["model"], strokes, gallery, transform=setup["tf"], k=4,
                           image_size=32, canvas_size=256, query_label=0)
    fig = plot_sketch_query(result, strokes=strokes, canvas_size=256, title="t")
    axes = fig.axes
    assert len(axes) == 2 + 4
    for rank, ax in enumerate(axes[2:]):
        colour = ax.spines["top"].get_edgecolor()
        expected = (0x1a, 0x98, 0x50) if result.hits[rank] else (0xd7, 0x30, 0x27)
        assert tuple(round(c * 255) for c in colour[:3]) == expected
        assert ax.get_title().startswith(f"{rank + 1} · {result.scores[rank]:.3f}")
        assert [t.get_text() for t in ax.texts] == ["✓" if result.hits[rank] else "✗"]
    assert len(plot_sketch_query(result).axes) == 1 + 4  # without strokes: no first panel


def test_results_html_tiles(setup):
    gallery = GalleryIndex.build(setup["features"], setup["paths"], labels=setup["labels"],
                                 class_names=["<b>ellipse</b>", "bar"])
    result = query_strokes(setup["model"], example_strokes("bar_wheels"), gallery,
                           transform=setup["tf"], k=4, image_size=32, canvas_size=256,
                           query_label=1)
    cache = {}
    page = results_html(result, thumbnail_px=50, thumbnails=cache)
    assert page.count("<img ") == 1 + 4 and page.count("data:image/png;base64,") == 5
    assert len(cache) == len(set(result.paths))
    for rank in range(4):
        mark = "✓" if result.hits[rank] else "✗"
        assert f"{mark} {rank + 1} · {result.scores[rank]:.3f}" in page
    assert len(re.findall(r"border:3px solid #1a9850", page)) == int(result.hits.sum())
    assert len(re.findall(r"border:3px solid #d73027", page)) == 4 - int(result.hits.sum())
    assert "<b>ellipse</b>" not in page  # class names are escaped
    unknown = query_strokes(setup["model"], example_strokes("bar_wheels"), gallery,
                            transform=setup["tf"], k=4, image_size=32, canvas_size=256)
    page = results_html(unknown)
    assert "#1a9850" not in page and "#d73027" not in page and "class not set" in page


# ------------------------------------------------------------------------------------------------
# Where the pad runs


def test_live_frontend_guess(monkeypatch):
    monkeypatch.delenv("AMALIB_SKETCH_PAD", raising=False)
    assert live_frontend() is False  # under pytest
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert live_frontend() is False  # plain Python
    shell = types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    assert live_frontend() is True  # a Jupyter kernel
    monkeypatch.setenv("AMALIB_SKETCH_PAD", "static")
    assert live_frontend() is False
    monkeypatch.setenv("AMALIB_SKETCH_PAD", "live")
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert live_frontend() is True
    monkeypatch.delenv("AMALIB_SKETCH_PAD")
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert live_frontend() is True


def test_sketch_pad_falls_back_to_the_static_example(setup):
    out = sketch_pad(setup["model"], setup["features"], setup["paths"], setup["labels"],
                     **common(setup))  # under pytest: static
    assert isinstance(out, SketchQueryFigure)
    forced = sketch_pad(setup["model"], setup["features"], setup["paths"], setup["labels"],
                        interactive=False, query_label="bar_wheels", **common(setup))
    assert repr(forced) == repr(out)  # the menu's class does not change the example


def test_missing_ipycanvas(setup, monkeypatch):
    monkeypatch.setitem(sys.modules, "ipycanvas", None)  # import fails
    with pytest.raises(ImportError, match="pip install"):
        sketch_pad(setup["model"], setup["features"], setup["paths"], setup["labels"],
                   interactive=True, **common(setup))
    monkeypatch.setenv("AMALIB_SKETCH_PAD", "live")
    with pytest.warns(UserWarning, match="ipycanvas is not installed"):
        out = sketch_pad(setup["model"], setup["features"], setup["paths"], setup["labels"],
                         **common(setup))
    assert isinstance(out, SketchQueryFigure)


# ------------------------------------------------------------------------------------------------
# The live pad, driven through the canvas's own event handler (what the browser sends)


@pytest.fixture
def pad(setup):
    pytest.importorskip("ipycanvas")
    return sketch_pad(setup["model"], setup["features"], setup["paths"], setup["labels"],
                      interactive=True, canvas_size=200, **common(setup))


def send(pad, event, x=0.0, y=0.0, **extra):
    pad.canvas._handle_frontend_event(None, {"event": event, "x": x, "y": y, **extra}, [])


def draw(pad, points):
    send(pad, "mouse_down", *points[0])
    for p in points[1:]:
        send(pad, "mouse_move", *p)
    send(pad, "mouse_up", *points[-1])


def test_pad_updates_on_pen_up(pad, setup):
    from amalib.apps.sketch_widget import SketchPad

    assert isinstance(pad, SketchPad)
    assert pad.result is None and "Draw a sketch" in pad.results.value
    send(pad, "mouse_move", 5, 5)  # pen up: moving draws nothing
    assert pad.strokes == [] and pad.result is None
    send(pad, "mouse_down", 20, 20)
    send(pad, "mouse_move", 100, 20)
    assert pad.result is None  # nothing searched while the pen is down
    send(pad, "mouse_up", 100, 100)
    assert pad.strokes == [[(20.0, 20.0), (100.0, 20.0), (100.0, 100.0)]]
    expected = query_strokes(setup["model"], pad.strokes, pad.gallery, transform=setup["tf"],
                             k=4, image_size=32, canvas_size=200)
    np.testing.assert_array_equal(pad.result.indices, expected.indices)
    assert pad.result.hits is None and pad.results.value.count("<img ") == 5
    assert "1 stroke · top-4 of 6 photos" in pad.status.value


def test_pad_class_menu_marks_hits(pad):
    assert pad.classes.label == "not known" and pad.query_label is None
    draw(pad, [(30, 100), (170, 100)])
    pad.classes.value = 1  # "I drew" bar_wheels
    assert pad.query_label == 1
    np.testing.assert_array_equal(pad.result.hits, pad.result.labels == 1)
    assert "#1a9850" in pad.results.value or "#d73027" in pad.results.value
    assert "bar_wheels photos among the top 4" in pad.results.value
    pad.classes.label = "not known"
    assert pad.result.hits is None
    assert [label for label, _ in pad.classes.options] == ["not known", *CLASSES]


def test_pad_clear_undo_mouse_out_and_touch(pad, tmp_path):
    draw(pad, [(30, 30), (150, 30)])
    send(pad, "mouse_down", 50, 50)
    send(pad, "mouse_move", 60, 190)
    send(pad, "mouse_out", 60, 199)  # leaving the canvas lifts the pen
    assert len(pad.strokes) == 2 and pad.result is not None
    touches = [{"x": 10.0, "y": 10.0}]
    pad.canvas._handle_frontend_event(None, {"event": "touch_start", "touches": touches}, [])
    pad.canvas._handle_frontend_event(
        None, {"event": "touch_move", "touches": [{"x": 90.0, "y": 10.0}]}, [])
    pad.canvas._handle_frontend_event(None, {"event": "touch_end", "touches": []}, [])
    assert len(pad.strokes) == 3 and pad.strokes[-1] == [(10.0, 10.0), (90.0, 10.0)]
    strokes, size = load_strokes(pad.save(tmp_path / "drawing.json"))
    assert size == 200 and len(strokes) == 3
    pad.undo()
    assert len(pad.strokes) == 2 and pad.result is not None
    pad.clear()
    assert pad.strokes == [] and pad.result is None and "Draw a sketch" in pad.results.value
    pad.undo()  # nothing to undo: still empty, no error
    assert pad.result is None


def test_pad_buttons_are_wired(pad):
    draw(pad, [(30, 30), (150, 150)])
    pad.undo_button.click()
    assert pad.strokes == []
    draw(pad, [(30, 30), (150, 150)])
    pad.clear_button.click()
    assert pad.strokes == [] and pad.result is None


def test_pad_display_carries_the_static_example(pad, setup):
    bundle = pad._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["image/jpeg"].startswith("/9j/")  # base64 of a JPEG
    static = static_example(setup["model"], setup["features"], setup["paths"], setup["labels"],
                            **common(setup))
    assert bundle["text/plain"] == repr(static) == repr(pad)  # what nbval compares


def test_pad_preselected_class(setup):
    pytest.importorskip("ipycanvas")
    pad = sketch_pad(setup["model"], setup["features"], setup["paths"], setup["labels"],
                     interactive=True, query_label="bar_wheels", **common(setup))
    assert pad.classes.label == "bar_wheels" and pad.query_label == 1


def test_colab_widget_manager_is_switched_on(setup, monkeypatch):
    pytest.importorskip("ipycanvas")
    calls = []
    output = types.SimpleNamespace(enable_custom_widget_manager=lambda: calls.append(True))
    colab = types.ModuleType("google.colab")
    colab.output = output
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    sketch_pad(setup["model"], setup["features"], setup["paths"], setup["labels"],
               interactive=True, **common(setup))
    assert calls == [True]
    assert sketch_widget._enable_colab_widgets() is True


def test_every_drawing_batch_names_its_canvas(pad, monkeypatch):
    """A frontend that connected late (a reloaded page) learns which canvas to draw on."""
    from ipycanvas.canvas import COMMANDS

    manager = pad.canvas._canvas_manager
    sent = []
    monkeypatch.setattr(manager, "_send_custom", lambda command, buffers=(): sent.append(command))
    manager._current_canvas = pad.canvas  # the kernel believes the frontend knows it
    draw(pad, [(10, 10), (50, 50), (90, 10)])
    assert len(sent) == 3  # pen down, two moves: one message each
    for batch in sent:
        assert batch[0][0] == COMMANDS["switchCanvas"]
