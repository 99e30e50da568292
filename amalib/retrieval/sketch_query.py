"""One sketch against a photo gallery: strokes → image → features → cosine top-k.

The Python side of the sketch pad (:func:`amalib.apps.sketch_pad`, notebook
``06_retrieval_evaluation.ipynb``); ``amalib retrieve --strokes`` renders a drawing the same way
and embeds it like a sketch file (:func:`amalib.retrieval.gallery.embed_images`). A drawing is rendered
in the benchmark's sketch style (:func:`amalib.data.strokes.render_strokes`), passed through the
evaluation transform of the run, embedded by the retrieval backbone (the teacher, METHOD.md:
the L2-normalised CLS feature) and compared with precomputed gallery features by cosine
similarity.

The gallery is a plain ``(features, paths, labels)`` triple (:class:`PhotoGallery`), so it can
come from :func:`amalib.retrieval.test_features` or from any on-disk index that returns the same
three things.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from amalib.metrics import top_k, unit_features

__all__ = [
    "PhotoGallery",
    "SketchQueryResult",
    "cosine_top_k",
    "encode_image",
    "query_image",
    "query_strokes",
    "sketch_query_settings",
]


def cosine_top_k(query_features, gallery_features, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine scores of the ``k`` most similar gallery rows, for each query.

    :func:`amalib.metrics.top_k` for one or more queries: the metrics' scores and tie order
    (gallery index), the same on every machine.

    Args:
        query_features: ``(n_queries, dim)`` or ``(dim,)``; normalised here.
        gallery_features: ``(n_gallery, dim)``; normalised here.
        k: How many; at most the gallery size is returned.

    Returns:
        ``(indices, scores)``, both ``(n_queries, min(k, n_gallery))``: int64 and float32 numpy
        arrays, best first.
    """
    q = torch.as_tensor(query_features)
    q = q.reshape(1, -1) if q.ndim == 1 else q
    g = torch.as_tensor(gallery_features)
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query features have {q.shape[1]} dimensions, the gallery's "
                         f"{g.shape[1]}: were they made by the same backbone?")
    return top_k(q, g, k)


@dataclass(frozen=True)
class PhotoGallery:
    """A photo gallery to search: features, the files they came from and their classes.

    Build it with :meth:`build`, which checks the three agree and normalises the features once.

    Attributes:
        features: ``(N, D)`` float32, L2-normalised, on the CPU.
        paths: ``N`` image files (``str`` or :class:`~pathlib.Path`).
        labels: ``(N,)`` int64 class ids, or None for an unlabelled gallery.
        class_names: Names by class id, or None.
    """

    features: torch.Tensor
    paths: tuple
    labels: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None

    @classmethod
    def build(cls, features, paths: Sequence, labels=None,
              class_names: Sequence[str] | None = None) -> PhotoGallery:
        """Check and normalise a ``(features, paths, labels)`` triple.

        Raises:
            ValueError: lengths differ, features are not 2-D, or the gallery is empty.
        """
        f = torch.as_tensor(features).detach().float().cpu()
        if f.ndim != 2 or len(f) == 0:
            raise ValueError(f"gallery features must be a non-empty (N, D) array, got shape "
                             f"{tuple(f.shape)}")
        if len(paths) != len(f):
            raise ValueError(f"{len(paths)} paths for {len(f)} gallery features")
        y = None
        if labels is not None:
            y = np.asarray(torch.as_tensor(labels).cpu(), dtype=np.int64).reshape(-1)
            if len(y) != len(f):
                raise ValueError(f"{len(y)} labels for {len(f)} gallery features")
        names = tuple(str(n) for n in class_names) if class_names is not None else None
        return cls(unit_features(f), tuple(paths), y, names)

    def __len__(self) -> int:
        return len(self.features)

    def search(self, query_features, k: int) -> tuple[np.ndarray, np.ndarray]:
        """:func:`cosine_top_k` of the queries against this gallery."""
        return cosine_top_k(query_features, self.features, k)

    def label_of(self, query_label: int | str | None) -> int | None:
        """A class id from an id or a class name (None stays None)."""
        if query_label is None or isinstance(query_label, (int, np.integer)):
            return None if query_label is None else int(query_label)
        if self.class_names is None or query_label not in self.class_names:
            from amalib.errors import InputError

            raise InputError(f"unknown class {query_label!r}"
                             + (f"; the gallery's classes: {', '.join(self.class_names)}"
                                if self.class_names else " (the gallery has no class names)"))
        return self.class_names.index(query_label)


@dataclass(frozen=True)
class SketchQueryResult:
    """The top-k photos for one sketch.

    Attributes:
        image: The sketch as the model saw it before the transform (RGB, benchmark-sized).
        indices: ``(k,)`` gallery indices, best first.
        scores: ``(k,)`` cosine similarities.
        paths: The ``k`` photo files.
        labels: ``(k,)`` class ids of the photos, or None (unlabelled gallery).
        query_label: The class the sketch was drawn as, or None when not said.
        hits: ``(k,)`` bool, photo of the sketch's class; None unless both labels are known.
        class_names: Names by class id, or None.
    """

    image: object
    indices: np.ndarray
    scores: np.ndarray
    paths: tuple
    labels: np.ndarray | None
    query_label: int | None
    hits: np.ndarray | None
    class_names: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def class_name(self, label: int | None) -> str:
        """Name of class ``label`` when names are known, else its id (empty for None)."""
        if label is None:
            return ""
        if self.class_names is not None and 0 <= int(label) < len(self.class_names):
            return self.class_names[int(label)]
        return str(int(label))

    def describe(self) -> str:
        """One line per photo: rank, file name, class, cosine, hit/miss; then the hit count.

        File names only (no folders), so a notebook's saved output does not carry the paths of
        the machine that ran it.
        """
        lines = []
        for rank in range(len(self)):
            label = None if self.labels is None else int(self.labels[rank])
            mark = "" if self.hits is None else ("  hit" if self.hits[rank] else "  miss")
            lines.append(f"{rank + 1:>2}. {Path(self.paths[rank]).name:<28} "
                         f"{self.class_name(label):<16} cosine {self.scores[rank]:.3f}{mark}")
        if self.hits is not None:
            lines.append(f"hits: {int(self.hits.sum())}/{len(self)} photos of "
                         f"{self.class_name(self.query_label)}")
        return "\n".join(lines)


@torch.inference_mode()
def encode_image(model: nn.Module, image, transform) -> torch.Tensor:
    """The L2-normalised feature ``(D,)`` of one PIL image, on the CPU.

    Runs ``model`` in eval mode on the device of its parameters and restores its mode after.
    """
    from amalib.retrieval.gallery import embed_images  # the path `amalib retrieve` embeds with

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        return embed_images(model, transform, [image], device=device)[0]
    finally:
        model.train(was_training)


def query_image(model: nn.Module, image, gallery: PhotoGallery, *, transform, k: int = 8,
                query_label: int | str | None = None) -> SketchQueryResult:
    """Top-k photos of ``gallery`` for one sketch image.

    Args:
        model: Retrieval backbone, ``(1, 3, H, W) → (1, D)`` (the trained teacher).
        image: PIL sketch image.
        gallery: Features, paths, labels (see :class:`PhotoGallery`).
        transform: The run's evaluation transform (:func:`sketch_query_settings`).
        k: Photos to return.
        query_label: Class id or name of the sketch, to mark hits; None: not known.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        from amalib.errors import InputError

        raise InputError(f"k is how many photos to show: an integer >= 1, got {k!r}")
    label = gallery.label_of(query_label)
    feature = encode_image(model, image, transform)
    indices, scores = gallery.search(feature, k)
    indices, scores = indices[0], scores[0]
    labels = gallery.labels[indices] if gallery.labels is not None else None
    hits = labels == label if labels is not None and label is not None else None
    return SketchQueryResult(image, indices, scores, tuple(gallery.paths[i] for i in indices),
                             labels, label, hits, gallery.class_names)


def query_strokes(model: nn.Module, strokes, gallery: PhotoGallery, *, transform, k: int = 8,
                  query_label: int | str | None = None, image_size: int = 64,
                  canvas_size: int | tuple[int, int] | None = None, fit: bool = True,
                  **render_kwargs) -> SketchQueryResult:
    """Top-k photos for a drawing: :func:`~amalib.data.strokes.render_strokes`, then
    :func:`query_image`.

    Args:
        strokes: Polylines of ``(x, y)`` canvas pixels.
        image_size: Side of the rendered sketch (the benchmark's sketch size).
        canvas_size: Side of the canvas (see ``render_strokes``).
        fit: Centre and scale the drawing like the benchmark's sketches.
        **render_kwargs: ``line_width``, ``ink``, ``fill`` of ``render_strokes``.
        model, gallery, transform, k, query_label: As in :func:`query_image`.

    Raises:
        ValueError: empty drawing (nothing to search with).
    """
    from amalib.data.strokes import render_strokes

    image = render_strokes(strokes, image_size=image_size, canvas_size=canvas_size, fit=fit,
                           **render_kwargs)
    return query_image(model, image, gallery, transform=transform, k=k, query_label=query_label)


def sketch_query_settings(config: dict) -> dict:
    """The rendering size and the transform a drawing needs to look like the run's test sketches.

    Returns:
        ``{"image_size": ..., "transform": ...}``: the generated benchmark's image size (64 for
        the embedded benchmark; 256, the size of Sketchy's sketches, for a real benchmark) and
        the config's test transform (``data.eval_resize``, ``data.eval_crop``,
        ``data.resize_interpolation``).
    """
    from amalib.config import eval_transform_from_config

    dcfg = config["data"]
    image_size = int((dcfg.get("generate") or {}).get("image_size", 256))
    transform = eval_transform_from_config(config)
    return {"image_size": image_size, "transform": transform}
