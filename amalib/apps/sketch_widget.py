"""Draw a sketch, see the photos: a drawing canvas whose top-k photos update on pen-up.

Notebook ``06_retrieval_evaluation.ipynb`` ends with it. The reader draws on an
`ipycanvas <https://ipycanvas.readthedocs.io>`_ canvas; when the pen is lifted the strokes are
rendered in the benchmark's sketch style, embedded by the retrieval backbone and ranked against
precomputed gallery features (:mod:`amalib.retrieval.sketch_query`, which is where the tested
logic lives: this module only wires widgets to it and draws results).

ipycanvas rather than a hand-written front end: it ships its JupyterLab extension in the pip
package, runs in Colab once Colab's custom widget manager is on (done here automatically) and
reports mouse and touch events to Python, so the pad needs no JavaScript of its own.

Where no frontend can run the widget — a notebook executed by nbval in CI, a plain Python
script, a rendered notebook on GitHub — :func:`sketch_pad` shows :func:`static_example`
instead: a drawing written in code, rendered to an image and searched for, as a figure with a
deterministic text form.
"""

from __future__ import annotations

import base64
import html
import io
import os
import sys
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from amalib.viz._marks import HIT_COLOUR, MISS_COLOUR, frame_hit

__all__ = [
    "INSTALL_HINT",
    "SketchPad",
    "SketchQueryFigure",
    "live_frontend",
    "plot_sketch_query",
    "results_html",
    "sketch_pad",
    "static_example",
]

INSTALL_HINT = 'pip install "ipycanvas>=0.13" (or pip install "amalib[full]")'
#: Environment variable that overrides the detection of a live frontend: ``static`` or ``live``.
MODE_VARIABLE = "AMALIB_SKETCH_PAD"

#: The static example's drawing (:data:`amalib.data.strokes.EXAMPLE_SKETCHES`).
DEFAULT_EXAMPLE = "ellipse_hole"

_UNKNOWN = "#bbbbbb"  # the frame of a photo when the drawing's class is not set
_NOT_KNOWN = -1


def _import_widgets():
    try:
        import ipycanvas
        import ipywidgets
    except ImportError as err:
        raise ImportError(f"the sketch pad needs ipycanvas and ipywidgets ({err}); install them "
                          f"with: {INSTALL_HINT}") from err
    return ipywidgets, ipycanvas


def _enable_colab_widgets() -> bool:
    """Colab draws third-party widgets (ipycanvas) only with its custom widget manager on."""
    if "google.colab" not in sys.modules:
        return False
    from google.colab import output

    output.enable_custom_widget_manager()
    return True


def live_frontend() -> bool:
    """Whether a widget displayed now reaches a frontend that can run it.

    A kernel cannot see its frontend, so this guesses from where it runs, in order:

    1. ``AMALIB_SKETCH_PAD=static`` or ``=live`` in the environment decides;
    2. under pytest (nbval executes the notebooks under pytest, whose ``PYTEST_CURRENT_TEST``
       the kernel inherits): no — the saved outputs must be deterministic, and nobody draws;
    3. in Colab: yes;
    4. in a Jupyter kernel (JupyterLab, Notebook 7, VS Code): yes;
    5. anywhere else (plain ``python``, the IPython terminal): no.
    """
    mode = os.environ.get(MODE_VARIABLE, "").strip().lower()
    if mode in ("static", "0", "off", "no"):
        return False
    if mode in ("live", "interactive", "1", "on", "yes"):
        return True
    if "PYTEST_CURRENT_TEST" in os.environ:
        return False
    if "google.colab" in sys.modules:
        return True
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


# ------------------------------------------------------------------------------------------------
# Settings shared by the pad and the static example


def _settings(model, config, transform, image_size) -> tuple[object, int]:
    """The transform and sketch size: explicit values, else the config's, else the model's."""
    if config is not None:
        from amalib.retrieval.sketch_query import sketch_query_settings

        settings = sketch_query_settings(config)
        transform = transform if transform is not None else settings["transform"]
        image_size = image_size if image_size is not None else settings["image_size"]
    if transform is None:
        from amalib.data.transforms import eval_transform

        size = getattr(getattr(model, "patch_embed", None), "img_size", None)
        if size is None:
            raise ValueError("give the run's config (config=...) or a transform: the model "
                             "does not say its input size")
        side = int(size[0] if isinstance(size, (tuple, list)) else size)
        transform = eval_transform(side, side)
    return transform, int(image_size if image_size is not None else 64)


def _gallery(gallery_features, paths, labels, class_names):
    """The exact :class:`~amalib.retrieval.index.GalleryIndex` of the pad's photos."""
    from amalib.retrieval.index import GalleryIndex

    return GalleryIndex.build(gallery_features, paths, labels=labels, class_names=class_names)


def _open_rgb(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# ------------------------------------------------------------------------------------------------
# Drawing results


def plot_sketch_query(result, *, strokes=None, canvas_size: int | None = None, title: str = ""):
    """One row: the strokes as drawn, the sketch the model saw, then the top-k photos.

    Photos are framed green (the sketch's class) or red (another class) when the sketch's
    class is known, and titled with their rank and cosine similarity.

    Args:
        result: A :class:`~amalib.retrieval.sketch_query.SketchQueryResult`.
        strokes: The polylines drawn (canvas pixels); without them the first panel is omitted.
        canvas_size: Side of the canvas, for the first panel's frame.
        title: Figure title.

    Returns:
        A :class:`matplotlib.figure.Figure`.
    """
    import matplotlib.pyplot as plt

    from amalib.data.strokes import as_polylines

    k = len(result)
    lead = 2 if strokes is not None else 1
    fig, axes = plt.subplots(1, lead + k, figsize=(1.25 * (lead + k), 1.9), squeeze=False)
    axes = axes[0]
    if strokes is not None:
        ax = axes[0]
        for line in as_polylines(strokes):
            ax.plot(line[:, 0], line[:, 1], color="black", lw=1.2, solid_capstyle="round")
        side = canvas_size or 256
        ax.set(xlim=(0, side), ylim=(side, 0), aspect="equal")
        ax.set_title("strokes", fontsize=9)
    ax = axes[lead - 1]
    ax.imshow(np.asarray(result.image))
    name = result.class_name(result.query_label)
    ax.set_title(f"sketch\n{name}" if name else "sketch", fontsize=9)
    for rank in range(k):
        ax = axes[lead + rank]
        ax.imshow(_open_rgb(result.paths[rank]))
        ax.set_title(f"{rank + 1} · {result.scores[rank]:.3f}", fontsize=9)
        if result.hits is not None:
            frame_hit(ax, bool(result.hits[rank]))
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _data_uri(image, size: int | None = None) -> str:
    """A PIL image as a PNG ``data:`` URI, reduced to at most ``size`` pixels when larger."""
    if size is not None and max(image.size) > size:
        image = image.copy()
        image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def results_html(result, *, thumbnail_px: int = 88, thumbnails: dict | None = None) -> str:
    """The top-k photos of a sketch as an HTML block: what the sketch pad shows.

    The first tile is the sketch as the model saw it; then one tile per photo with its rank,
    cosine similarity and class, framed green (hit), red (miss) or grey (class not known).
    Images are inlined as ``data:`` URIs, so the block shows the same in JupyterLab, Colab and
    a saved notebook.

    Args:
        result: A :class:`~amalib.retrieval.sketch_query.SketchQueryResult`.
        thumbnail_px: Side of a tile (small images are scaled up without smoothing).
        thumbnails: A cache ``{path: data URI}`` reused across calls (the pad keeps one).
    """
    from PIL import Image

    cache = {} if thumbnails is None else thumbnails

    def tile(uri: str, border: str, caption: str) -> str:
        return (f'<figure style="margin:0;text-align:center;width:{thumbnail_px + 6}px">'
                f'<img src="{uri}" width="{thumbnail_px}" height="{thumbnail_px}" '
                f'style="image-rendering:pixelated;border:3px solid {border}"/>'
                f'<figcaption style="font-size:11px;line-height:1.2">{caption}</figcaption>'
                "</figure>")

    name = result.class_name(result.query_label)
    tiles = [tile(_data_uri(result.image, 4 * thumbnail_px), "#555555",
                  "the sketch<br>" + (html.escape(name) if name else "(class not set)"))]
    for rank in range(len(result)):
        path = result.paths[rank]
        if path not in cache:
            with Image.open(path) as im:
                cache[path] = _data_uri(im, 2 * thumbnail_px)
        label = None if result.labels is None else int(result.labels[rank])
        border = _UNKNOWN if result.hits is None else (HIT_COLOUR if result.hits[rank] else MISS_COLOUR)
        mark = "" if result.hits is None else ("✓ " if result.hits[rank] else "✗ ")
        caption = f"{mark}{rank + 1} · {result.scores[rank]:.3f}"
        if label is not None:
            caption += "<br>" + html.escape(result.class_name(label))
        tiles.append(tile(cache[path], border, caption))
    summary = (f"top-{len(result)} photos by cosine similarity" if result.hits is None else
               f"{html.escape(name)} photos among the top {len(result)}: "
               f"{int(result.hits.sum())} (green ✓: hit, red ✗: miss)")
    return ('<div style="font-family:sans-serif">'
            f'<div style="display:flex;flex-wrap:wrap;gap:6px">{"".join(tiles)}</div>'
            f'<div style="font-size:12px;margin-top:4px">{summary}</div></div>')


# ------------------------------------------------------------------------------------------------
# The static example


class SketchQueryFigure:
    """The static example's output: a figure as JPEG, and a text form that is deterministic.

    Displays as the figure in a notebook (``_repr_jpeg_``: photos compress badly as PNG, the
    figure would weigh 150 kB in the saved notebook); its text (``repr``) lists the photos with
    their scores. A live :class:`SketchPad` carries the same picture and text next to its
    widget, so a notebook executed where the pad is live (``jupyter nbconvert --execute``) and
    where it is not (nbval) saves the same text, and a viewer that cannot run widgets (GitHub)
    shows the figure.

    Attributes:
        result: The :class:`~amalib.retrieval.sketch_query.SketchQueryResult`.
        strokes: The drawing searched for.
        jpeg: The figure, JPEG bytes.
    """

    def __init__(self, result, strokes, jpeg: bytes):
        self.result, self.strokes, self.jpeg = result, strokes, jpeg

    def _repr_jpeg_(self) -> bytes:
        return self.jpeg

    def __repr__(self) -> str:
        return ("sketch pad, example drawing (strokes written in code), top-"
                f"{len(self.result)} photos:\n{self.result.describe()}")


def _static_figure(model, gallery, *, transform, image_size: int, k: int, example: str,
                   strokes, canvas_size: int, query_label) -> SketchQueryFigure:
    import matplotlib.pyplot as plt

    from amalib.data.strokes import example_strokes
    from amalib.retrieval.sketch_query import query_strokes

    if strokes is None:
        strokes = example_strokes(example)
        if query_label is None and gallery.class_names and example in gallery.class_names:
            query_label = example
    result = query_strokes(model, strokes, gallery, transform=transform, k=k,
                           query_label=query_label, image_size=image_size,
                           canvas_size=canvas_size)
    fig = plot_sketch_query(result, strokes=strokes, canvas_size=canvas_size,
                            title=f"top-{len(result)} photos for a drawing (cosine)")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="jpeg", dpi=fig.dpi, pil_kwargs={"quality": 85})
    plt.close(fig)
    return SketchQueryFigure(result, strokes, buffer.getvalue())


def static_example(model, gallery_features, paths: Sequence, labels=None, *, k: int = 8,
                   class_names: Sequence[str] | None = None, config: dict | None = None,
                   transform=None, image_size: int | None = None, example: str = DEFAULT_EXAMPLE,
                   strokes=None, canvas_size: int = 256,
                   query_label: int | str | None = None) -> SketchQueryFigure:
    """A drawing written in code, rendered and searched for: the sketch pad without a mouse.

    Args:
        model, gallery_features, paths, labels, k, class_names, config, transform,
            image_size: As in :func:`sketch_pad`.
        example: Which drawing of :data:`amalib.data.strokes.EXAMPLE_SKETCHES` to use (one of
            the embedded benchmark's unseen classes); ignored when ``strokes`` is given.
        strokes: Your own polylines on a ``canvas_size`` canvas instead.
        canvas_size: Side of the canvas the strokes are drawn on.
        query_label: Class of the drawing, to mark hits. Default: the example's class when the
            gallery has a class of that name, else not known.

    Returns:
        A :class:`SketchQueryFigure` (displays as the figure).
    """
    gallery = _gallery(gallery_features, paths, labels, class_names)
    transform, image_size = _settings(model, config, transform, image_size)
    return _static_figure(model, gallery, transform=transform, image_size=image_size, k=k,
                          example=example, strokes=strokes, canvas_size=canvas_size,
                          query_label=query_label)


# ------------------------------------------------------------------------------------------------
# The live pad


class SketchPad:
    """A canvas to draw on, a class menu, and the top-k photos refreshed when the pen lifts.

    Build it with :func:`sketch_pad`. Display it by ending a cell with it (or
    ``display(pad.widget)``). The drawing is kept in :attr:`strokes` (canvas pixels) and the
    last search in :attr:`result`; :meth:`save` writes the drawing for
    ``amalib retrieve --strokes``.

    The pen methods (:meth:`pen_down`, :meth:`pen_move`, :meth:`pen_up`) are what the
    canvas's mouse and touch events call; leaving the canvas lifts the pen.

    Attributes:
        widget: The ipywidgets box shown in the notebook.
        canvas: The :class:`ipycanvas.Canvas`.
        classes: The class menu (``None`` = not known: no hits marked).
        status: A line under the canvas (how many strokes; errors).
        results: The HTML of the top-k photos (:func:`results_html`).
    """

    def __init__(self, model, gallery, *, transform, image_size: int = 64, k: int = 8,
                 canvas_size: int = 256, pen_width: float = 4.0, thumbnail_px: int = 88,
                 query_label: int | str | None = None, example: str = DEFAULT_EXAMPLE):
        widgets, ipycanvas = _import_widgets()
        _enable_colab_widgets()
        self.model, self.gallery, self.transform = model, gallery, transform
        self.image_size, self.k, self.canvas_size = int(image_size), int(k), int(canvas_size)
        self.thumbnail_px, self.example = thumbnail_px, example
        self._static: SketchQueryFigure | None = None
        self.strokes: list[list[tuple[float, float]]] = []
        self.result = None
        self._current: list[tuple[float, float]] | None = None
        self._thumbnails: dict = {}

        side = f"{self.canvas_size}px"
        self.canvas = ipycanvas.Canvas(
            width=self.canvas_size, height=self.canvas_size,
            layout=widgets.Layout(width=side, height=side, border="1px solid #888888",
                                  flex="0 0 auto"))
        self.pen_width = float(pen_width)
        self.clear_button = widgets.Button(description="clear", icon="eraser",
                                           layout=widgets.Layout(width="auto"))
        self.undo_button = widgets.Button(description="undo stroke", icon="undo",
                                          layout=widgets.Layout(width="auto"))
        ids = (range(len(gallery.class_names)) if gallery.class_names else
               [int(c) for c in np.unique(gallery.labels) if c >= 0]
               if gallery.labels is not None else [])
        # -1 stands for "not known": a Dropdown shows a blank box when its value is None.
        label = gallery.label_of(query_label)
        self.classes = widgets.Dropdown(
            options=[("not known", _NOT_KNOWN)] + [(gallery.class_name(i), i) for i in ids],
            value=_NOT_KNOWN if label is None else label, description="I drew",
            layout=widgets.Layout(width=side))
        self.status = widgets.HTML()
        self.results = widgets.HTML(layout=widgets.Layout(flex="1 1 auto"))
        left = widgets.VBox([self.canvas, widgets.HBox([self.clear_button, self.undo_button]),
                             self.classes, self.status], layout=widgets.Layout(flex="0 0 auto"))
        self.widget = widgets.HBox([left, self.results])

        self.canvas.on_client_ready(self._redraw)
        self.canvas.on_mouse_down(self.pen_down)
        self.canvas.on_mouse_move(self.pen_move)
        self.canvas.on_mouse_up(self.pen_up)
        self.canvas.on_mouse_out(self.pen_up)
        self.canvas.on_touch_start(lambda touches: self.pen_down(*touches[0]) if touches else None)
        self.canvas.on_touch_move(lambda touches: self.pen_move(*touches[0]) if touches else None)
        self.canvas.on_touch_end(lambda _touches: self.pen_up())
        self.canvas.on_touch_cancel(lambda _touches: self.pen_up())
        self.clear_button.on_click(lambda _button: self.clear())
        self.undo_button.on_click(lambda _button: self.undo())
        self.classes.observe(lambda _change: self.refresh(), names="value")
        self._redraw()
        self._show_empty()

    @property
    def query_label(self) -> int | None:
        """The class chosen in the "I drew" menu, or None when not known."""
        value = self.classes.value
        return None if value is None or value == _NOT_KNOWN else int(value)

    # -- pen events
    def pen_down(self, x: float, y: float) -> None:
        """Start a stroke at ``(x, y)`` (canvas pixels)."""
        self._current = [(float(x), float(y))]
        with self._drawing():
            self.canvas.fill_circle(float(x), float(y), self.pen_width / 2)

    def pen_move(self, x: float, y: float) -> None:
        """Extend the stroke being drawn (ignored while the pen is up)."""
        if self._current is None:
            return
        x0, y0 = self._current[-1]
        self._current.append((float(x), float(y)))
        with self._drawing():
            self.canvas.stroke_line(x0, y0, float(x), float(y))

    def pen_up(self, x: float | None = None, y: float | None = None) -> None:
        """Finish the stroke and search the gallery with the whole drawing."""
        if self._current is None:
            return
        if x is not None and y is not None and (float(x), float(y)) != self._current[-1]:
            self.pen_move(x, y)
        self.strokes.append(self._current)
        self._current = None
        self.refresh()

    # -- buttons
    def clear(self) -> None:
        """Erase the drawing and the results."""
        self.strokes, self._current, self.result = [], None, None
        self._redraw()
        self._show_empty()

    def undo(self) -> None:
        """Remove the last stroke and search again."""
        if self.strokes:
            self.strokes.pop()
        self._redraw()
        self.refresh()

    def save(self, path) -> Path:
        """Write the drawing as JSON (:func:`amalib.data.strokes.save_strokes`)."""
        from amalib.data.strokes import save_strokes

        return save_strokes(path, self.strokes, canvas_size=self.canvas_size)

    # -- search and display
    def refresh(self) -> None:
        """Search with the current drawing and show the photos (or the empty state)."""
        from amalib.retrieval.sketch_query import query_strokes

        if not self.strokes:
            self._show_empty()
            return
        try:
            self.result = query_strokes(
                self.model, self.strokes, self.gallery, transform=self.transform, k=self.k,
                query_label=self.query_label, image_size=self.image_size,
                canvas_size=self.canvas_size)
        except Exception as err:  # shown in the pad: a callback's traceback would be hidden
            self.status.value = f'<span style="color:{MISS_COLOUR}">error: {html.escape(str(err))}</span>'
            raise
        self.results.value = results_html(self.result, thumbnail_px=self.thumbnail_px,
                                          thumbnails=self._thumbnails)
        n = len(self.strokes)
        self.status.value = (f"{n} stroke{'s' if n != 1 else ''} · top-{self.k} of "
                             f"{len(self.gallery)} photos")

    def _show_empty(self) -> None:
        self.result = None
        self.results.value = ('<div style="font-family:sans-serif;color:#555;padding:8px">'
                              "Draw a sketch on the canvas: the photos appear when you lift "
                              "the pen.</div>")
        self.status.value = f"{len(self.gallery)} photos in the gallery"

    @contextmanager
    def _drawing(self):
        """Send the draw commands inside as one message that starts by naming this canvas.

        ipycanvas sends the commands of every canvas through one shared manager widget, which
        names the target canvas only when it differs from the last one *the kernel* drew on. A
        frontend that connected after that (a reloaded page, a reopened notebook with its
        kernel still running) never learnt it and drops the commands: the pad searched but the
        canvas stayed blank (seen in the browser check, ``docs/sketch_pad_check.md``). So the
        manager is made to forget its last canvas, and the pen's style is set each time.
        """
        from ipycanvas import hold_canvas

        manager = getattr(self.canvas, "_canvas_manager", None)
        if manager is not None and hasattr(manager, "_current_canvas"):
            manager._current_canvas = None
        with hold_canvas():
            self.canvas.line_width = self.pen_width
            self.canvas.line_cap = "round"
            self.canvas.line_join = "round"
            self.canvas.stroke_style = "black"
            self.canvas.fill_style = "black"
            yield

    def _redraw(self) -> None:
        """Paint the paper white and replay the strokes (a new view starts blank)."""
        with self._drawing():
            self.canvas.clear()
            self.canvas.fill_style = "white"
            self.canvas.fill_rect(0, 0, self.canvas_size, self.canvas_size)
            self.canvas.fill_style = "black"
            for stroke in self.strokes:
                if len(stroke) > 1:
                    self.canvas.stroke_lines(stroke)
                else:
                    self.canvas.fill_circle(*stroke[0], self.pen_width / 2)

    def static(self) -> SketchQueryFigure:
        """The static example of this pad's model and gallery (computed once)."""
        if self._static is None:
            self._static = _static_figure(
                self.model, self.gallery, transform=self.transform, image_size=self.image_size,
                k=self.k, example=self.example, strokes=None, canvas_size=self.canvas_size,
                query_label=None)
        return self._static

    def _repr_mimebundle_(self, **kwargs):
        """The widget, plus the static example as JPEG and text for where widgets cannot run.

        JupyterLab and Colab draw the widget (its renderer outranks images); GitHub and other
        static viewers show the picture; the text is the static example's, the same as
        :func:`sketch_pad` returns where no frontend is live, so nbval finds the same text
        whether the saved output was made with a live pad or not.
        """
        bundle = self.widget._repr_mimebundle_(**kwargs)
        static = self.static()
        bundle["image/jpeg"] = base64.b64encode(static.jpeg).decode("ascii")
        bundle["text/plain"] = repr(static)
        return bundle

    def __repr__(self) -> str:
        return repr(self.static())


def sketch_pad(model, gallery_features, paths: Sequence, labels=None, *, k: int = 8,
               class_names: Sequence[str] | None = None, config: dict | None = None,
               transform=None, image_size: int | None = None, canvas_size: int = 256,
               interactive: bool | None = None, example: str = DEFAULT_EXAMPLE,
               query_label: int | str | None = None):
    """Draw a sketch with the mouse and see the gallery's top-k photos (notebook 06).

    In JupyterLab, Notebook 7 or Colab this returns a :class:`SketchPad`: a canvas, *clear*
    and *undo* buttons, an "I drew" class menu (when set, hits are framed green and misses red)
    and the top-k photos with their cosine similarities, refreshed each time the pen is lifted.
    Elsewhere — under nbval, in a plain Python script — it returns :func:`static_example`'s
    figure, so the same notebook cell runs everywhere and its saved output is deterministic.

    Colab draws ipycanvas only with its custom widget manager, which this turns on
    (``google.colab.output.enable_custom_widget_manager()``).

    Args:
        model: Retrieval backbone (the trained teacher), ``(1, 3, H, W) → (1, D)``.
        gallery_features: ``(N, D)`` photo features from the same backbone.
        paths: ``N`` photo files.
        labels: ``(N,)`` class ids of the photos, or None.
        k: Photos shown.
        class_names: Names by class id (the class menu).
        config: The run's config: gives the test transform and the sketch size
            (:func:`amalib.retrieval.sketch_query.sketch_query_settings`).
        transform: The test transform, overriding the config's. Without either: resize and
            centre-crop to the model's input size.
        image_size: Side of the rendered sketch, overriding the config's (default 64, the
            embedded benchmark's).
        canvas_size: Side of the canvas in screen pixels.
        interactive: True: the live pad (ImportError naming the install command when ipycanvas
            is missing); False: the static example; None: :func:`live_frontend` decides, and
            the static example is shown when ipycanvas is missing.
        example: Drawing of the static example (its class marks the hits when the gallery has
            a class of that name).
        query_label: Class preselected in the pad's menu (id or name).

    Returns:
        A :class:`SketchPad` or a :class:`SketchQueryFigure`; end the cell with it.
    """
    if interactive is None:
        interactive = live_frontend()
        if interactive:
            try:
                _import_widgets()
            except ImportError:
                interactive = False
                warnings.warn(f"ipycanvas is not installed, so there is no canvas to draw on: "
                              f"{INSTALL_HINT}", stacklevel=2)
    gallery = _gallery(gallery_features, paths, labels, class_names)
    transform, image_size = _settings(model, config, transform, image_size)
    if not interactive:
        # The example's own class, whatever the menu preselects: the same text as a live pad's.
        return _static_figure(model, gallery, transform=transform, image_size=image_size, k=k,
                              example=example, strokes=None, canvas_size=canvas_size,
                              query_label=None)
    return SketchPad(model, gallery, transform=transform, image_size=image_size, k=k,
                     canvas_size=canvas_size, query_label=query_label, example=example)
