"""Datasets over benchmark file lists: unlabelled training sets, labelled evaluation sets.

Training code must never see a label (docs/method.md, "The task"): :class:`UnlabelledImages` reads
a list file, keeps the paths and **drops the labels before storing anything**, and returns
``(transform(image), index)``; ``index`` is the sample's position in its domain's training list,
which is how the engine looks up cluster assignments. :class:`LabelledImages` returns
``(image, label, index)`` and is used only for evaluation.

A corrupt or truncated image is logged with its path and skipped: ``__getitem__`` returns
``None`` and :func:`collate_skip_broken` / :func:`amalib.data.transforms.collate_multicrop` drop
it. Each dataset counts what it skipped (``dataset.n_skipped``, shared with DataLoader worker
processes; ``dataset.skipped_paths`` lists those met in the calling process) so that a run can
report them at the end instead of dying.

Training sets are different: the fused training step needs equal sketch and photo batches on
every rank, so a dropped sample would break it. :class:`UnlabelledImages` built with
``replace_unreadable=True`` (what :func:`build_training_sets` and :func:`build_pretrain_set`
do) answers an unreadable index with another readable sample of the same list, chosen
deterministically from the index, and counts it (``dataset.n_replaced``).
"""

from __future__ import annotations

import logging
import multiprocessing
import random
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate

from amalib.data.benchmarks import BenchmarkSpec, read_class_names, read_file_list

__all__ = [
    "UnlabelledImages",
    "LabelledImages",
    "build_training_sets",
    "build_eval_sets",
    "build_pretrain_set",
    "collate_skip_broken",
    "load_rgb",
]

log = logging.getLogger(__name__)


def load_rgb(path) -> Image.Image:
    """Open an image fully (decoding it now, so truncation errors surface here) as RGB."""
    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")


class _ImageList(Dataset):
    """Common part: resolves paths, loads images, skips and counts broken ones."""

    def __init__(self, root, list_file, transform: Callable | None = None, *, layout: str = ""):
        self.root = Path(root)
        self.list_file = None if list_file is None else Path(list_file)
        self.transform = transform
        hint = f"\n{layout}" if layout else ""
        if not self.root.is_dir():
            raise FileNotFoundError(f"image root not found: {self.root}{hint}")
        if list_file is not None and not self.list_file.is_file():
            raise FileNotFoundError(
                f"file list not found: {self.list_file} (expected lines 'relative/path label', "
                f"paths relative to {self.root}){hint}"
            )
        # Shared counters: DataLoader workers inherit them, so the parent sees their skips.
        self._n_skipped = multiprocessing.get_context().Value("i", 0)
        self._n_replaced = multiprocessing.get_context().Value("i", 0)
        self.skipped_paths: list[str] = []

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def n_skipped(self) -> int:
        """How many unreadable images were skipped (in this process and its loader workers)."""
        return int(self._n_skipped.value)

    @property
    def n_replaced(self) -> int:
        """How many times an unreadable training image was answered with another one."""
        return int(self._n_replaced.value)

    def _load(self, i: int):
        path = self.root / self.paths[i]
        try:
            image = load_rgb(path)
        except (OSError, ValueError, SyntaxError) as err:  # PIL raises these for bad files
            log.warning("skipping unreadable image %s: %s", path, err)
            with self._n_skipped.get_lock():
                self._n_skipped.value += 1
            self.skipped_paths.append(str(path))
            return None
        return self.transform(image) if self.transform is not None else image

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} images from {self.list_file or self.root})"


class UnlabelledImages(_ImageList):
    """Images of a list file **without labels**: ``dataset[i] = (transform(image), i)``.

    The labels of the list are parsed (the format has them) and discarded; the object stores only
    the relative paths, so no label is reachable from it.

    Args:
        root: Directory the list's paths are relative to.
        list_file: A ``relative/path label`` list (see :func:`read_file_list`).
        transform: Applied to the RGB :class:`PIL.Image.Image` (e.g. a multi-crop transform).
        layout: Optional description of the expected tree, appended to "not found" errors.
        replace_unreadable: Answer an unreadable image with another readable one of the list
            (training sets) instead of ``None``.

    Returns from ``__getitem__``:
        ``(transform(image), i)``; for an unreadable image ``None``, or with
        ``replace_unreadable`` ``(transform(other), j)`` for a readable index ``j != i``.

    Raises:
        RuntimeError: ``replace_unreadable`` and no readable replacement was found.
    """

    #: How many other samples an unreadable one may try before the dataset gives up.
    max_replacement_tries = 64

    def __init__(self, root, list_file, transform: Callable | None = None, *, layout: str = "",
                 replace_unreadable: bool = False):
        super().__init__(root, list_file, transform, layout=layout)
        self.paths: list[str] = [path for path, _label in read_file_list(self.list_file)]
        self.replace_unreadable = replace_unreadable
        self._unreadable: set[int] = set()  # per process: known-bad indices are not re-decoded

    def __getitem__(self, i: int):
        image = None if i in self._unreadable else self._load(i)
        if image is not None:
            return image, i
        if not self.replace_unreadable:
            return None
        self._unreadable.add(i)
        return self._replacement(i)

    def _replacement(self, i: int):
        """Another readable sample for the unreadable index ``i``: the same in every process and
        epoch (drawn from a generator seeded by ``i``), returned with its own index so that the
        engine looks up *its* cluster assignment."""
        rng = random.Random(i)
        for _ in range(min(self.max_replacement_tries, len(self) - 1)):
            j = rng.randrange(len(self))
            if j == i or j in self._unreadable:
                continue
            image = self._load(j)
            if image is None:
                self._unreadable.add(j)
                continue
            with self._n_replaced.get_lock():
                self._n_replaced.value += 1
            log.warning("replaced unreadable image %s by %s", self.root / self.paths[i],
                        self.root / self.paths[j])
            return image, j
        raise RuntimeError(
            f"{self.list_file}: image {self.root / self.paths[i]} is unreadable and so were "
            f"{self.max_replacement_tries} other images of the list tried in its place; check "
            f"the files under {self.root} (re-extract or regenerate the data)"
        )


class LabelledImages(_ImageList):
    """Images with labels: ``dataset[i] = (transform(image), label, i)``.

    For evaluation, and for the supervised training outside AMA (the embedded starting backbone
    on the pool classes, the ablation's oracle; :mod:`amalib.train.supervised`). AMA's training
    sets are :class:`UnlabelledImages`.

    Args:
        root: Directory the list's paths are relative to.
        list_file: A ``relative/path label`` list, or ``None`` with ``entries``.
        transform: Applied to the RGB image.
        class_names: Optional class map (names by id); labels are checked against it.
        layout: Optional description of the expected tree, appended to "not found" errors.
        entries: ``[(relative_path, label), ...]`` used instead of reading ``list_file`` (a
            folder of images, :func:`amalib.retrieval.gallery.folder_gallery`; label ``-1``: none).

    Attributes:
        labels: ``(N,)`` int64 tensor of the labels, in list order.
        class_names: The class names by id, or ``None``.
    """

    def __init__(
        self,
        root,
        list_file,
        transform: Callable | None = None,
        *,
        class_names: list[str] | None = None,
        layout: str = "",
        entries: list[tuple[str, int]] | None = None,
    ):
        if list_file is None and entries is None:
            raise ValueError("LabelledImages needs a list_file or entries")
        super().__init__(root, list_file, transform, layout=layout)
        entries = read_file_list(self.list_file) if entries is None else list(entries)
        self.paths = [path for path, _ in entries]
        self.labels = torch.tensor([label for _, label in entries], dtype=torch.long)
        self.class_names = class_names
        if (
            class_names is not None
            and len(self.labels)
            and int(self.labels.max()) >= len(class_names)
        ):
            raise ValueError(
                f"{self.list_file}: label {int(self.labels.max())} but only {len(class_names)} "
                "classes in the class map"
            )

    def __getitem__(self, i: int):
        image = self._load(i)
        return None if image is None else (image, int(self.labels[i]), i)


def collate_skip_broken(batch):
    """``default_collate`` after dropping ``None`` samples (unreadable images).

    Returns:
        The collated batch, or ``None`` when every sample of the batch was broken.
    """
    kept = [sample for sample in batch if sample is not None]
    return default_collate(kept) if kept else None


def _paths(root, spec: BenchmarkSpec):
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"benchmark root not found: {root}\n{spec.layout(root)}")
    return root, root / spec.image_root


def build_training_sets(
    root, spec: BenchmarkSpec, sketch_transform: Callable, photo_transform: Callable
) -> tuple[UnlabelledImages, UnlabelledImages]:
    """The unlabelled seen-class training sets of a benchmark.

    The two domains have different sizes and are meant to be drawn independently (no pairing).

    Args:
        root: Data root (see :mod:`amalib.data.benchmarks` for the layout).
        spec: The benchmark.
        sketch_transform: Multi-crop transform for sketches.
        photo_transform: Multi-crop transform for photos.

    Returns:
        ``(sketch_dataset, photo_dataset)``, each yielding ``(crops, index)``; an unreadable
        image is replaced by another readable one of its domain (``replace_unreadable=True``),
        so every batch has ``batch_size`` samples.
    """
    root, images = _paths(root, spec)
    layout = spec.layout(root)
    sketch = UnlabelledImages(images, root / spec.sketch_train, sketch_transform, layout=layout,
                              replace_unreadable=True)
    photo = UnlabelledImages(images, root / spec.photo_train, photo_transform, layout=layout,
                             replace_unreadable=True)
    return sketch, photo


def build_eval_sets(
    root, spec: BenchmarkSpec, transform: Callable, *, train_transform: Callable | None = None
) -> dict[str, Dataset]:
    """Evaluation sets of a benchmark.

    Args:
        root: Data root.
        spec: The benchmark.
        transform: Test-time transform (docs/method.md: resize 224 + centre crop 224).
        train_transform: Transform for the seen-class sets used for feature extraction /
            clustering (docs/method.md: resize 256 + centre crop 224); defaults to ``transform``.

    Returns:
        ``{"sketch_test", "photo_test"}``: :class:`LabelledImages` of the unseen classes
        (queries and gallery); ``{"sketch_train", "photo_train"}``: :class:`UnlabelledImages`
        of the seen classes, in training-list order (so feature row ``i`` is training index ``i``);
        ``"photo_seen"``: the seen-class photos again as :class:`LabelledImages` with
        ``transform`` and the seen class map — the extra gallery of the generalised protocol
        (:func:`amalib.protocols.evaluate_generalized`), for evaluation code only.
    """
    root, images = _paths(root, spec)
    layout = spec.layout(root)
    train_transform = transform if train_transform is None else train_transform
    test_names = read_class_names(root / spec.class_names_test)
    return {
        "sketch_test": LabelledImages(
            images, root / spec.sketch_test, transform, class_names=test_names, layout=layout
        ),
        "photo_test": LabelledImages(
            images, root / spec.photo_test, transform, class_names=test_names, layout=layout
        ),
        "sketch_train": UnlabelledImages(
            images, root / spec.sketch_train, train_transform, layout=layout
        ),
        "photo_train": UnlabelledImages(
            images, root / spec.photo_train, train_transform, layout=layout
        ),
        "photo_seen": LabelledImages(
            images, root / spec.photo_train, transform, layout=layout,
            class_names=read_class_names(root / spec.class_names_train),
        ),
    }


def build_pretrain_set(root, spec: BenchmarkSpec, transform: Callable) -> UnlabelledImages:
    """The unlabelled extra-class photo pool of a benchmark that has one (the mini-benchmark).

    Raises:
        ValueError: The benchmark has no pretraining pool (use ImageNet DINO weights instead).
    """
    if spec.pretrain_photos is None:
        raise ValueError(f"benchmark {spec.name!r} has no pretraining photo pool")
    root, images = _paths(root, spec)
    return UnlabelledImages(
        images, root / spec.pretrain_photos, transform, layout=spec.layout(root),
        replace_unreadable=True,
    )
