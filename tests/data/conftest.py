"""Tiny benchmark trees written in a temporary directory, in each real layout."""

import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Per benchmark: (sketch path pattern, photo path pattern, seen classes, unseen classes used).
# Patterns follow docs/method.md's example paths; {c} is the class, {i} the image number.
LAYOUTS = {
    "sketchy21": (
        "256x256/sketch/tx_000000000000_ready/{c}/n0269_{i}-1.png",
        "256x256/photo/tx_000000000000_ready/{c}/n0269_{i}.jpg",
        ["airplane", "teddy_bear"],
        ["bat", "cabin"],
    ),
    "sketchy25": (
        "256x256/sketch/tx_000000000000_ready/{c}/n0300_{i}-2.png",
        "EXTEND_image_sketchy_ready/{c}/ext_{i}.jpg",
        ["bat", "zebra"],
        ["cup", "teddy_bear"],
    ),
    "tuberlin": (
        "png_ready/{c}/{i}.png",
        "ImageResized_ready/{c}/img {i}.JPEG",  # a space in the file name too
        ["airplane", "alarm clock"],
        ["hot air balloon", "bottle opener"],
    ),
    "quickdraw": (
        "sketches/{c}/{i}.png",
        "images/{c}/{i}.jpg",
        ["apple", "The Eiffel Tower"],
        ["palm tree", "fire_hydrant"],
    ),
}


def write_image(path: Path, seed: int, size: int = 20, sketch: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if sketch:
        arr = np.full((size, size, 3), 255, np.uint8)
        arr[size // 2, 2:-2] = 0
    else:
        arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    Image.fromarray(arr).save(path, format=fmt)


def write_tree(root: Path, spec, sketch_pattern, photo_pattern, seen, unseen, per_class=2):
    """Write images, lists and class maps of ``spec``'s layout; returns {split: [(path, label)]}."""
    images = root / spec.image_root
    written = {}
    for split, (lst, cmap, _) in spec.splits().items():
        classes = seen if split.endswith("train") else unseen
        pattern = sketch_pattern if split.startswith("sketch") else photo_pattern
        entries = []
        for label, c in enumerate(classes):
            for i in range(per_class):
                rel = pattern.format(c=c, i=i)
                write_image(images / rel, seed=zlib.crc32(rel.encode()), sketch="sketch" in split)
                entries.append((rel, label))
        (root / lst).parent.mkdir(parents=True, exist_ok=True)
        (root / lst).write_text("".join(f"{p} {y}\n" for p, y in entries))
        (root / cmap).write_text("".join(f"{c} {k}\n" for k, c in enumerate(classes)))
        written[split] = entries
    return written


@pytest.fixture
def make_tree(tmp_path):
    """``make_tree(name)`` → (root, spec, entries) for a tiny tree in the real layout ``name``."""
    from dataclasses import replace

    from amalib.data.benchmarks import get_benchmark

    def make(name, per_class=2):
        sketch_pattern, photo_pattern, seen, unseen = LAYOUTS[name]
        spec = get_benchmark(name)
        # The tiny tree uses two unseen classes and its own sizes.
        spec = replace(
            spec,
            unseen_classes=tuple(unseen),
            expected_train_classes=len(seen),
            expected_train_sketches=len(seen) * per_class,
            expected_train_photos=len(seen) * per_class,
            expected_test_sketches=len(unseen) * per_class,
            expected_test_photos=len(unseen) * per_class,
        )
        root = tmp_path / f"data_{name}"
        entries = write_tree(root, spec, sketch_pattern, photo_pattern, seen, unseen, per_class)
        return root, spec, entries

    return make


@pytest.fixture
def image_writer():
    """``image_writer(path, seed, size=20, sketch=False)`` writes a small PNG/JPEG."""
    return write_image
