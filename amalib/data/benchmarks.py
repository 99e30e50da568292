"""The zero-shot SBIR benchmarks: file-list readers and one registry of their layouts.

Every benchmark of the field (Sketchy 21/25-class splits, TU-Berlin, QuickDraw-Extended) ships
as images plus *file lists*: one ``relative/path label`` line per image, where the path is
everything before the last run of whitespace (TU-Berlin class names contain spaces), and
``label`` indexes a class map ``cname_cid.txt`` (seen / training classes) or
``cname_cid_zero.txt`` (unseen / test classes) whose lines are ``class name id``.

A :class:`BenchmarkSpec` records where those files are, relative to a data root::

    <root>/<spec.sketch_train>          list files and class maps (spec fields)
    <root>/<spec.image_root>/<path>     the images, ``path`` as written in the lists

e.g. ``<root>/Sketchy/zeroshot0/sketch_tx_000000000000_ready_filelist_train.txt`` holding lines
``256x256/sketch/tx_000000000000_ready/airplane/n02691156_10151-1.png 0`` that resolve to
``<root>/Sketchy/256x256/sketch/...``. The embedded mini-benchmark (``"mini"``, see
:mod:`amalib.data.synthetic`) uses the same scheme with ``image_root = ""``.

Unseen-class lists and sizes are the published ones (see ``docs/method.md``, "Benchmarks and their
file lists").
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, replace
from pathlib import Path

from amalib.data.lists import read_class_names, read_file_list
from amalib.data.synthetic import generate_mini_benchmark, mini_benchmark_classes

__all__ = [
    "BenchmarkSpec",
    "BENCHMARKS",
    "get_benchmark",
    "resolve_benchmark",
    "mini_benchmark_spec",
    "read_file_list",
    "read_class_names",
]

@dataclass(frozen=True)
class BenchmarkSpec:
    """Where a benchmark's files are and what they should contain.

    All ``*_train`` / ``*_test`` / ``class_names_*`` fields are paths relative to the data root;
    image paths inside the lists are relative to ``<root>/<image_root>``.

    Attributes:
        name: Registry key.
        image_root: Directory (relative to the data root) that list paths are relative to.
        sketch_train: Seen-class sketch list (training; labels never reach a loss).
        sketch_test: Unseen-class sketch list (queries).
        photo_train: Seen-class photo list (training).
        photo_test: Unseen-class photo list (gallery).
        class_names_train: Class map of the seen classes.
        class_names_test: Class map of the unseen classes.
        unseen_classes: The published unseen (test) classes of the split.
        expected_test_sketches: Published number of test sketches (``None``: not recorded).
        expected_test_photos: Published number of test photos.
        expected_train_classes: Number of seen classes.
        expected_train_sketches: Number of training sketches, when recorded.
        expected_train_photos: Number of training photos, when recorded.
        pretrain_photos: Optional list of extra photo classes for backbone pretraining.
        description: One line for reports.
    """

    name: str
    image_root: str
    sketch_train: str
    sketch_test: str
    photo_train: str
    photo_test: str
    class_names_train: str
    class_names_test: str
    unseen_classes: tuple[str, ...]
    expected_test_sketches: int | None
    expected_test_photos: int | None
    expected_train_classes: int | None
    expected_train_sketches: int | None = None
    expected_train_photos: int | None = None
    pretrain_photos: str | None = None
    description: str = ""

    def splits(self) -> dict[str, tuple[str, str, int | None]]:
        """``{split: (list file, class map, expected count)}`` for the four lists."""
        return {
            "sketch_train": (
                self.sketch_train,
                self.class_names_train,
                self.expected_train_sketches,
            ),
            "photo_train": (self.photo_train, self.class_names_train, self.expected_train_photos),
            "sketch_test": (self.sketch_test, self.class_names_test, self.expected_test_sketches),
            "photo_test": (self.photo_test, self.class_names_test, self.expected_test_photos),
        }

    def layout(self, root="<root>") -> str:
        """A few lines describing the expected tree under ``root`` (for error messages)."""
        root = Path(root)
        lines = [f"expected layout of benchmark {self.name!r}:"]
        for split, (lst, _cmap, _) in self.splits().items():
            lines.append(f"  {root / lst}   ({split}: 'relative/path label' lines)")
        lines.append(f"  {root / self.class_names_train}, {root / self.class_names_test}")
        lines.append(f"  images at {root / self.image_root}/<path as written in the lists>")
        if self.name != "mini":
            lines.append("  (run `amalib prepare` to check a download or build the lists)")
        else:
            lines.append("  (amalib generates it on first use with a config that has "
                         "data.generate, e.g. `amalib demo` or `amalib eval --checkpoint "
                         "ama_mini`)")
        return "\n".join(lines)


def _zeroshot_spec(
    name, image_root, split_dir, sketch_list, photo_list, unseen, *, test, train, description
) -> BenchmarkSpec:
    """The field's common layout: ``<image_root>/<split_dir>/{lists, cname_cid[_zero].txt}``."""
    base = f"{image_root}/{split_dir}" if image_root else split_dir
    n_classes, n_sketch, n_photo = train
    return BenchmarkSpec(
        name=name,
        image_root=image_root,
        sketch_train=f"{base}/{sketch_list.format(split='train')}",
        sketch_test=f"{base}/{sketch_list.format(split='zero')}",
        photo_train=f"{base}/{photo_list.format(split='train')}",
        photo_test=f"{base}/{photo_list.format(split='zero')}",
        class_names_train=f"{base}/cname_cid.txt",
        class_names_test=f"{base}/cname_cid_zero.txt",
        unseen_classes=tuple(unseen),
        expected_test_sketches=test[0],
        expected_test_photos=test[1],
        expected_train_classes=n_classes,
        expected_train_sketches=n_sketch,
        expected_train_photos=n_photo,
        description=description,
    )


_SKETCHY_LISTS = (
    "sketch_tx_000000000000_ready_filelist_{split}.txt",
    "all_photo_filelist_{split}.txt",
)

_UNSEEN = {
    "sketchy21": (
        "bat", "cabin", "cow", "dolphin", "door", "giraffe", "helicopter", "mouse", "pear",
        "raccoon", "rhinoceros", "saw", "scissors", "seagull", "skyscraper", "songbird", "sword",
        "tree", "wheelchair", "windmill", "window",
    ),
    "sketchy25": (
        "cup", "swan", "harp", "squirrel", "snail", "ray", "pineapple", "volcano", "rifle",
        "scissors", "parrot", "windmill", "teddy_bear", "tree", "wine_bottle", "deer", "chicken",
        "airplane", "wheelchair", "tank", "umbrella", "butterfly", "camel", "horse", "bell",
    ),
    "tuberlin": (
        "banana", "bus", "tractor", "suitcase", "streetlight", "telephone", "bottle opener",
        "canoe", "fan", "teacup", "penguin", "laptop", "shoe", "lighter", "hot air balloon",
        "pizza", "brain", "ant", "t-shirt", "trombone", "windmill", "snowboard", "table",
        "rollerblades", "parachute", "space shuttle", "bridge", "frying-pan", "bread", "horse",
    ),
    "quickdraw": (
        "bat", "cow", "dolphin", "door", "giraffe", "helicopter", "mouse", "raccoon",
        "rhinoceros", "saw", "scissors", "skyscraper", "tree", "windmill", "feather", "campfire",
        "palm tree", "fire_hydrant", "bread", "beach", "megaphone", "cactus", "zebra", "tiger",
        "shark", "frog", "banana", "cake", "hamburger", "fan",
    ),
}  # fmt: skip


def mini_benchmark_spec(**params) -> BenchmarkSpec:
    """Spec of the embedded mini-benchmark for the given generator parameters.

    Args:
        **params: Keyword arguments of :func:`amalib.data.synthetic.generate_mini_benchmark`
            that fix its classes and sizes (defaults otherwise).
    """
    defaults = {
        k: v.default
        for k, v in inspect.signature(generate_mini_benchmark).parameters.items()
        if v.default is not inspect.Parameter.empty
    }
    p = {**defaults, **{k: v for k, v in params.items() if k in defaults}}
    classes = mini_benchmark_classes(p["n_seen"], p["n_unseen"], p["n_pretrain_classes"])
    spec = _zeroshot_spec(
        "mini", "", "zeroshot", "sketch_filelist_{split}.txt", "photo_filelist_{split}.txt",
        classes["unseen"],
        test=(p["n_unseen"] * p["test_sketches_per_class"], p["n_unseen"] * p["test_photos_per_class"]),
        train=(p["n_seen"], p["n_seen"] * p["sketches_per_class"], p["n_seen"] * p["photos_per_class"]),
        description="embedded procedural benchmark generated by amalib.data.synthetic",
    )  # fmt: skip
    return replace(spec, pretrain_photos="pretrain/photo_filelist.txt")


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "sketchy21": _zeroshot_spec(
        "sketchy21", "Sketchy", "zeroshot0", *_SKETCHY_LISTS, _UNSEEN["sketchy21"],
        test=(12694, 12553), train=(104, 57587, 72949),
        description="Sketchy (extended), 21 unseen classes (the release's 'sketchy')",
    ),
    "sketchy25": _zeroshot_spec(
        "sketchy25", "Sketchy", "zeroshot1", *_SKETCHY_LISTS, _UNSEEN["sketchy25"],
        test=(15229, 17101), train=(100, 55252, 68401),
        description="Sketchy (extended), 25 unseen classes (the release's 'sketchy2')",
    ),
    "tuberlin": _zeroshot_spec(
        "tuberlin", "TUBerlin", "zeroshot", "png_ready_filelist_{split}.txt",
        "ImageResized_ready_filelist_{split}.txt", _UNSEEN["tuberlin"],
        test=(2400, 27989), train=(220, 15400, None),
        description="TU-Berlin (extended), 30 unseen classes",
    ),
    "quickdraw": _zeroshot_spec(
        "quickdraw", "QuickDraw", "zeroshot", "sketch_{split}.txt", "all_photo_{split}.txt",
        _UNSEEN["quickdraw"], test=(92291, 54151), train=(80, None, None),
        description="QuickDraw-Extended, 30 unseen classes",
    ),
    "mini": mini_benchmark_spec(),
}  # fmt: skip


def get_benchmark(name: str) -> BenchmarkSpec:
    """The registered spec called ``name`` (case-insensitive).

    Raises:
        KeyError: Unknown name; the message lists the valid ones.
    """
    key = name.lower()
    if key not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; valid names: {', '.join(sorted(BENCHMARKS))}")
    return BENCHMARKS[key]


def resolve_benchmark(root, name: str) -> BenchmarkSpec:
    """Spec of benchmark ``name`` as found under ``root``.

    Same as :func:`get_benchmark`, except that a generated tree (one with the generator's
    ``manifest.json``, i.e. the mini-benchmark with non-default parameters) gets the sizes and
    unseen classes its manifest records.
    """
    spec = get_benchmark(name)
    manifest = Path(root) / "manifest.json"
    if spec.name == "mini" and manifest.is_file():
        try:
            params = json.loads(manifest.read_text(encoding="utf-8"))["params"]
        except (ValueError, KeyError):
            return spec
        return mini_benchmark_spec(**params)
    return spec
