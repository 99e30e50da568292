"""Serving: a :class:`~amalib.retrieval.index.GalleryIndex` built from a checkpoint, and queries against it.

``amalib index build`` extracts a gallery once — a benchmark split or a folder of images — with
the teacher backbone of a training checkpoint and writes the features, paths, labels and faiss
index to one file; ``amalib retrieve --index`` then embeds only the query sketches.

The file records where its features come from: the checkpoint's path and a fingerprint of its
teacher backbone's weights (:func:`backbone_fingerprint`), the model and the image transform.
A query is embedded with that transform and must come from the same weights, because features
of two backbones are not comparable: :func:`load_query_model` refuses a checkpoint whose
fingerprint or feature dimension differs from the index's, naming both files and the command
that rebuilds the index. Nothing falls back silently.

Galleries (``--gallery``):

* ``BENCHMARK:SPLIT`` (e.g. ``mini:test``, ``quickdraw:all``) under the config's
  ``data.root``: ``test`` — the unseen-class photos (the zs gallery); ``seen`` — the seen-class
  photos; ``all`` — both, the generalised (gzs) gallery, seen ids shifted past the unseen ones
  (:func:`amalib.protocols.seen_offset`) and class names ``unseen + seen``.
* a folder: every image below it (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.webp``, sorted);
  labelled by the first sub-folder's name when every image is in a sub-folder, else unlabelled.

Unreadable images are skipped with a warning (their count is recorded).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from amalib.checkpoint_io import SHIPPED_MODELS

__all__ = ["IMAGE_SUFFIXES", "GALLERY_SPLITS", "backbone_fingerprint", "folder_gallery",
           "build_gallery_index", "load_query_model", "embed_images", "parse_gallery",
           "read_query_image"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
GALLERY_SPLITS = ("test", "seen", "all")


def backbone_fingerprint(backbone: nn.Module) -> str:
    """SHA-256 of a backbone's weights: parameter names, dtypes, shapes and bytes, in name order.

    Two checkpoints with the same teacher weights have the same fingerprint wherever they are
    stored; moving or copying a checkpoint does not change it, training it further does.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(backbone.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def folder_gallery(folder) -> tuple[Path, list[tuple[str, int]], list[str] | None]:
    """The images below ``folder`` as ``(root, [(relative_path, label), ...], class_names)``.

    Labels come from the first-level sub-folder when every image lies in one (``class_names``:
    the sub-folder names, sorted); otherwise every label is ``-1`` and ``class_names`` is None.

    Raises:
        FileNotFoundError: ``folder`` is not a directory, or holds no image.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"gallery folder not found: {root}")
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no image ({', '.join(IMAGE_SUFFIXES)}) below {root}")
    if all("/" in f for f in files):
        names = sorted({f.split("/", 1)[0] for f in files})
        ids = {name: i for i, name in enumerate(names)}
        return root, [(f, ids[f.split("/", 1)[0]]) for f in files], names
    return root, [(f, -1) for f in files], None


def parse_gallery(gallery: str) -> tuple[str, str] | Path:
    """``"BENCHMARK:SPLIT"`` as ``(benchmark, split)``; anything else as a folder path.

    Raises:
        FileNotFoundError: a known benchmark with an unknown split, or a folder that does not
            exist (the message shows both forms).
    """
    from amalib.data.benchmarks import BENCHMARKS

    name, sep, split = gallery.partition(":")
    if sep and name.lower() in BENCHMARKS:
        if split not in GALLERY_SPLITS:
            raise FileNotFoundError(f"--gallery {gallery}: unknown split {split!r}; choose "
                                    f"{', '.join(GALLERY_SPLITS)} (e.g. {name}:test)")
        return name.lower(), split
    if not Path(gallery).is_dir():
        raise FileNotFoundError(
            f"gallery not found: {gallery} is neither a folder of images nor BENCHMARK:SPLIT "
            f"(benchmarks: {', '.join(sorted(BENCHMARKS))}; splits: {', '.join(GALLERY_SPLITS)})")
    return Path(gallery)


def _transform(spec: dict):
    from amalib.data.transforms import eval_transform

    return eval_transform(spec["resize"], spec["crop"], interpolation=spec["interpolation"])


def _benchmark_parts(config: dict, benchmark: str, split: str, transform):
    """``[(LabelledImages, label_offset), ...]``, the image root and the class names."""
    from amalib.config import ensure_generated_data
    from amalib.data.benchmarks import resolve_benchmark
    from amalib.data.datasets import build_eval_sets

    root = Path(config["data"]["root"])
    if benchmark == config["benchmark"]:  # the embedded benchmark is generated on first use
        ensure_generated_data(config["data"])
    spec = resolve_benchmark(root, benchmark)
    sets = build_eval_sets(root, spec, transform)
    unseen, seen = sets["photo_test"], sets["photo_seen"]
    if split == "test":
        return [(unseen, 0)], unseen.root, unseen.class_names
    if split == "seen":
        return [(seen, 0)], seen.root, seen.class_names
    from amalib.protocols import seen_offset

    offset = seen_offset(unseen.labels)
    names = None
    if unseen.class_names is not None and seen.class_names is not None:
        names = list(unseen.class_names) + list(seen.class_names)
    return [(unseen, 0), (seen, offset)], unseen.root, names


def build_gallery_index(checkpoint, gallery: str | None = None, *, kind: str = "flat",
                        params: dict | None = None, overrides=(), device=None,
                        batch_size: int | None = None, progress: bool = True):
    """Extract a gallery with a checkpoint's teacher backbone and index it.

    Args:
        checkpoint: An ``amalib train`` checkpoint or a shipped model's name (``ama_mini``).
        gallery: ``BENCHMARK:SPLIT`` or a folder (see the module docstring); default: the
            checkpoint's benchmark, ``test`` split.
        kind, params: The index (see :class:`amalib.retrieval.index.GalleryIndex`).
        overrides: ``KEY=VALUE`` changes to the checkpoint's config (e.g. ``data.root=/data``).
        device: Where the backbone runs (default: CUDA when available).
        batch_size: Images per forward pass (default: the config's ``data.eval_batch_size``).
        progress: Progress bars during extraction.

    Returns:
        The :class:`~amalib.retrieval.index.GalleryIndex` (in memory; ``.save(path)`` writes it).
    """
    from amalib.config import apply_overrides, eval_transform_from_config, eval_transform_spec
    from amalib.data.datasets import LabelledImages
    from amalib.retrieval.evaluate import load_trained_backbone
    from amalib.retrieval.features import extract_features
    from amalib.retrieval.index import GalleryIndex

    backbone, config = load_trained_backbone(checkpoint)
    config = apply_overrides(config, list(overrides))
    dcfg = config["data"]
    transform_spec = eval_transform_spec(config)  # what the index records as its transform
    transform = eval_transform_from_config(config)
    gallery = gallery or f"{config['benchmark']}:test"
    source = parse_gallery(gallery)
    if isinstance(source, Path):
        root, entries, names = folder_gallery(source)
        parts = [(LabelledImages(root, None, transform, entries=entries), 0)]
        described = {"folder": str(root.resolve())}
    else:
        parts, root, names = _benchmark_parts(config, *source, transform)
        described = {"benchmark": source[0], "split": source[1], "data_root": dcfg["root"]}
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    features, paths, labels, skipped = [], [], [], 0
    for dataset, offset in parts:
        fs = extract_features(backbone.to(device), dataset, device=device, progress=progress,
                              batch_size=batch_size or dcfg["eval_batch_size"],
                              desc=f"gallery {len(features) + 1}/{len(parts)}")
        keep = fs.valid.numpy()
        skipped += int((~keep).sum())
        features.append(fs.features.numpy()[keep])
        paths += [p for p, k in zip(dataset.paths, keep) if k]
        labels.append(np.where(fs.labels.numpy() >= 0, fs.labels.numpy() + offset, -1)[keep])
    if skipped:
        log.warning("skipped %d unreadable gallery images", skipped)
    labels = np.concatenate(labels)
    labelled = bool((labels >= 0).all())
    model = config["model"]
    provenance = {
        # a shipped model by its name (its file's place differs from one install to the next)
        "checkpoint": {"path": str(checkpoint) if str(checkpoint) in SHIPPED_MODELS
                       else str(Path(checkpoint).resolve()),
                       "weights_sha256": backbone_fingerprint(backbone)},
        "model": {k: model.get(k) for k in ("arch", "patch_size", "img_size", "stem")},
        "transform": transform_spec,
        "gallery": {"source": gallery, **described, "n_skipped": skipped,
                    **({"n_unseen_classes": len(parts[0][0].class_names or [])}
                       if len(parts) == 2 else {})},
    }
    return GalleryIndex.build(np.concatenate(features), paths, root=root, kind=kind,
                              labels=labels if labelled else None,
                              class_names=names if labelled else None, params=params,
                              provenance=provenance)


def load_query_model(index, checkpoint=None, *, device="cpu", with_config: bool = False):
    """The backbone and transform that embed queries for ``index``.

    Args:
        index: A :class:`~amalib.retrieval.index.GalleryIndex`.
        checkpoint: The checkpoint to use; default: the one the index records.
        device: Where the backbone goes.
        with_config: Also return the checkpoint's config (e.g. for the sketch size a drawing
            is rendered at).

    Returns:
        ``(backbone, transform)``, or ``(backbone, transform, config)`` with ``with_config``.

    Raises:
        FileNotFoundError: the checkpoint is not there (the message says which file recorded it).
        GalleryIndexError: its feature dimension or weights differ from the index's.
    """
    from amalib.retrieval.evaluate import load_trained_backbone
    from amalib.retrieval.index import GalleryIndexError

    where = index.source or "the index"
    recorded = index.provenance.get("checkpoint", {})
    if checkpoint is None:
        checkpoint = recorded.get("path")
        if checkpoint is None:
            raise GalleryIndexError(f"{where} records no checkpoint: pass --checkpoint")
        if checkpoint not in SHIPPED_MODELS and not Path(checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint not found: {checkpoint} (recorded in {where}); "
                                    "pass --checkpoint with its new location")
    backbone, config = load_trained_backbone(checkpoint)
    source = index.provenance.get("gallery", {}).get("source", "<gallery>")
    rebuild = (f"rebuild the index for it (amalib index build --checkpoint {checkpoint} "
               f"--gallery {source} --out {where}) or pass the checkpoint it was built with "
               f"({recorded.get('path')})")
    dim = getattr(backbone, "num_features", None)
    if dim is not None and dim != index.dim:
        raise GalleryIndexError(f"{checkpoint} gives {dim}-d features but {where} holds "
                                f"{index.dim}-d ones: {rebuild}")
    fingerprint = backbone_fingerprint(backbone)
    if recorded.get("weights_sha256") not in (None, fingerprint):
        raise GalleryIndexError(
            f"{checkpoint} is not the model {where} was built with (weights fingerprint "
            f"{fingerprint[:12]}, the index's {recorded['weights_sha256'][:12]}): {rebuild}")
    transform = _transform(index.provenance["transform"])
    if with_config:
        return backbone.to(device).eval(), transform, config
    return backbone.to(device).eval(), transform


@torch.inference_mode()
def embed_images(backbone: nn.Module, transform, images, *, device="cpu",
                 batch_size: int = 32) -> torch.Tensor:
    """L2-normalised features ``(len(images), D)`` of query images (e.g. sketches).

    Args:
        images: Image files, or PIL images already in memory (e.g. a drawing rendered by
            :func:`amalib.data.strokes.render_strokes`); both take the same path.

    Raises:
        FileNotFoundError: a file does not exist.
        amalib.errors.InputError: a file is not an image (see :func:`read_query_image`).
    """
    from PIL import Image

    items = [im if isinstance(im, Image.Image) else Path(im) for im in images]
    for item in items:
        if isinstance(item, Path) and not item.is_file():
            raise FileNotFoundError(f"image not found: {item}")
    out = []
    with torch.no_grad():  # features only: no autograd graph for the queries
        for start in range(0, len(items), batch_size):
            batch = torch.stack([transform(im.convert("RGB") if isinstance(im, Image.Image)
                                           else read_query_image(im))
                                 for im in items[start:start + batch_size]])
            out.append(backbone(batch.to(device)).float().cpu())
    return torch.nn.functional.normalize(torch.cat(out), dim=1)


def read_query_image(path) -> Image.Image:
    """A query sketch file, decoded now, as RGB.

    Raises:
        FileNotFoundError: no such file.
        amalib.errors.InputError: the file is not an image PIL can decode (another kind of file,
            a truncated image, or one larger than PIL's decompression-bomb limit); the message
            names the file.
    """
    from PIL import Image

    from amalib.data.datasets import load_rgb
    from amalib.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sketch image not found: {path}")
    try:
        return load_rgb(path)
    except Image.DecompressionBombError as err:
        raise InputError(f"{path} is too large to read safely ({err}); give a smaller sketch "
                         "image") from None
    except (OSError, ValueError, SyntaxError) as err:  # UnidentifiedImageError is an OSError
        reason = "not an image file PIL recognises" if isinstance(
            err, Image.UnidentifiedImageError) else str(err).splitlines()[0]
        raise InputError(f"{path} is not a readable image ({reason}); give a sketch as a PNG or "
                         "JPEG file, or a drawing with --strokes") from None
