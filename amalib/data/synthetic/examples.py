"""A few images of a few classes of a generated tree, read through its lists (for a figure)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from amalib.data.lists import read_file_list

__all__ = ["ClassExamples", "mini_benchmark_examples"]


@dataclass(frozen=True)
class ClassExamples:
    """A few images of one class of a generated tree (see :func:`mini_benchmark_examples`).

    Attributes:
        name: The class name, e.g. ``"circle_legs"``.
        seen: Whether the class is seen (training) rather than unseen (test).
        photos: RGB ``(H, W, 3)`` uint8 arrays.
        sketches: RGB ``(H, W, 3)`` uint8 arrays.
    """

    name: str
    seen: bool
    photos: list
    sketches: list


def mini_benchmark_examples(root="data/mini", n_classes: int = 6, per_class: int = 3,
                            seed: int = 0) -> list[ClassExamples]:
    """A few photos and sketches of a few classes of a generated mini-benchmark.

    Picks classes from the seen and unseen splits (half each where possible, seen first) and
    ``per_class`` photos and ``per_class`` sketches of each (fewer where a class has fewer), at
    random from ``seed``. Draw them with :func:`amalib.viz.benchmark.plot_mini_benchmark`.

    Returns:
        One :class:`ClassExamples` per class.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = []
    for split, want in (("train", (n_classes + 1) // 2), ("zero", n_classes // 2)):
        by_class: dict[int, dict[str, list[str]]] = {}
        for domain in ("photo", "sketch"):
            for rel, label in read_file_list(root / f"zeroshot/{domain}_filelist_{split}.txt"):
                by_class.setdefault(label, {"photo": [], "sketch": []})[domain].append(rel)
        labels = sorted(by_class)
        for label in rng.permutation(labels)[: min(want, len(labels))]:
            rows.append((split, by_class[int(label)]))
    examples = []
    for split, files in rows:
        images = {}
        for domain in ("photo", "sketch"):
            pick = rng.choice(
                len(files[domain]), size=min(per_class, len(files[domain])), replace=False
            )
            images[domain] = [_read_rgb(root / files[domain][idx]) for idx in pick]
        examples.append(ClassExamples(name=Path(files["sketch"][0]).parent.name,
                                      seen=split == "train", photos=images["photo"],
                                      sketches=images["sketch"]))
    return examples


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
