"""A probe of a generated tree: the background kind of each listed photo, rendered again."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from amalib.data.lists import read_file_list
from amalib.data.synthetic.grammar import _class_indices, mini_benchmark_classes
from amalib.data.synthetic.photo import render_photo
from amalib.data.synthetic.writer import GENERATOR_VERSION, _instance_rng, _read_manifest

__all__ = ["photo_background_kinds"]


def photo_background_kinds(root, list_file: str) -> np.ndarray:
    """Background kind of every photo in one list of a generated mini-benchmark, in list order.

    The kind is not stored with the images: each photo is rendered again from its own random
    generator (the same draws as when it was written), which costs a few milliseconds per photo.
    For probing what features encode besides the class (:data:`BACKGROUND_KINDS`).

    Args:
        root: A tree written by :func:`generate_mini_benchmark` (its ``manifest.json`` gives the
            seed, the image size and the class splits).
        list_file: A photo list relative to ``root``, e.g. ``"zeroshot/photo_filelist_zero.txt"``
            or ``"pretrain/photo_filelist.txt"``.

    Returns:
        ``(N,)`` int64 kinds.

    Raises:
        FileNotFoundError: ``root`` has no manifest (not a generated mini-benchmark).
        ValueError: ``list_file`` lists sketches, or the tree is from another generator version.
    """
    root = Path(root)
    manifest = _read_manifest(root)
    if manifest is None:
        raise FileNotFoundError(f"{root / 'manifest.json'} not found: background kinds can only "
                                "be recovered for a tree written by generate_mini_benchmark")
    if manifest.get("version") != GENERATOR_VERSION:
        raise ValueError(f"{root} was written by generator version {manifest.get('version')}, "
                         f"this is version {GENERATOR_VERSION}: regenerate it (ensure_mini_benchmark)")
    p = manifest["params"]
    classes = mini_benchmark_classes(p["n_seen"], p["n_unseen"], p["n_pretrain_classes"])
    index = _class_indices(classes)
    kinds = []
    for rel, _ in read_file_list(root / list_file):
        parts = Path(rel).parts
        if parts[0] == "sketch":
            raise ValueError(f"{list_file} lists sketches; background kinds exist for photos only")
        domain = "pretrain_photo" if parts[0] == "pretrain" else "photo"
        name = parts[-2]
        image_index = int(Path(rel).stem.rsplit("_", 1)[1])
        info: dict = {}
        render_photo(name, _instance_rng(p["seed"], domain, index[name], image_index),
                     p["image_size"], style=p.get("photo_style", "busy"), info=info)
        kinds.append(info["background"])
    return np.asarray(kinds, dtype=np.int64)
