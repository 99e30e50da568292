"""One sketch against a photo gallery: strokes → image → features → cosine top-k.

The Python side of the sketch pad (:func:`amalib.apps.sketch_pad`, notebook
``06_retrieval_evaluation.ipynb``); ``amalib retrieve --strokes`` renders a drawing the same way
and embeds it like a sketch file (:func:`amalib.retrieval.gallery.embed_images`). A drawing is rendered
in the benchmark's sketch style (:func:`amalib.data.strokes.render_strokes`), passed through the
evaluation transform of the run, embedded by the retrieval backbone (the teacher, docs/method.md:
the L2-normalised CLS feature) and compared with precomputed gallery features by cosine
similarity.

The gallery is a :class:`~amalib.retrieval.index.GalleryIndex`, amalib's one gallery type: built
in memory from a ``(features, paths, labels)`` triple (e.g. of
:func:`amalib.retrieval.test_features`) with ``GalleryIndex.build``, or read from an ``.amaidx``
file; the search is its :meth:`~amalib.retrieval.index.GalleryIndex.search` (for the exact kind,
:func:`amalib.metrics.top_k`'s lists and scores).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from amalib.retrieval.index import GalleryIndex, class_name

__all__ = [
    "SketchQueryResult",
    "encode_image",
    "query_image",
    "query_strokes",
    "sketch_query_settings",
]


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

    @classmethod
    def of_search(cls, image, gallery: GalleryIndex, indices, scores,
                  query_label: int | None) -> SketchQueryResult:
        """The result of one query's row of ``gallery.search``: its photos, their classes and
        hits (missing places of an approximate search, index ``-1``, left out).

        Args:
            query_label: Class id of the sketch (:meth:`GalleryIndex.label_of`), or None.
        """
        found = np.asarray(indices) >= 0
        indices, scores = np.asarray(indices)[found], np.asarray(scores)[found]
        labels = gallery.labels[indices] if gallery.labels is not None else None
        hits = labels == query_label if labels is not None and query_label is not None else None
        # Paths as given when the gallery has no root (the sketch pad's), else root / path.
        paths = tuple(gallery.paths[i] if gallery.root is None else gallery.image_path(i)
                      for i in indices)
        names = None if gallery.class_names is None else tuple(gallery.class_names)
        return cls(image, indices, scores, paths, labels, query_label, hits, names)

    def __len__(self) -> int:
        return len(self.indices)

    def class_name(self, label: int | None) -> str:
        """Name of class ``label`` when names are known, else its id (empty for None)."""
        name = class_name(self.class_names, label)
        return "" if name is None else name

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


def query_image(model: nn.Module, image, gallery: GalleryIndex, *, transform, k: int = 8,
                query_label: int | str | None = None) -> SketchQueryResult:
    """Top-k photos of ``gallery`` for one sketch image.

    Args:
        model: Retrieval backbone, ``(1, 3, H, W) → (1, D)`` (the trained teacher).
        image: PIL sketch image.
        gallery: The photos (:class:`~amalib.retrieval.index.GalleryIndex`; for a
            ``(features, paths, labels)`` triple: ``GalleryIndex.build(features, paths,
            labels=labels, class_names=...)``).
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
    return SketchQueryResult.of_search(image, gallery, indices[0], scores[0], label)


def query_strokes(model: nn.Module, strokes, gallery: GalleryIndex, *, transform, k: int = 8,
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
