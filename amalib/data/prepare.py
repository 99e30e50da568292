"""Preparing a benchmark: check a downloaded tree, or build its file lists from class folders.

``amalib prepare <benchmark> --root DIR [--build-from RAW]`` calls :func:`prepare_main`.

* :func:`check_benchmark` reads every list file and class map of a benchmark under a data root and
  reports, per split, the number of entries against the published size, missing and unreadable
  images, and labels outside the class map — problems are collected into a
  :class:`BenchmarkReport`, never raised.
* :func:`build_file_lists` writes the lists and class maps of a benchmark's layout from a raw
  class-per-folder download (``<raw>/sketch/<class>/*``, ``<raw>/photo/<class>/*``), putting the
  split's published unseen classes in the test lists and every other class in the training lists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from amalib.data.benchmarks import (
    BenchmarkSpec,
    read_class_names,
    read_file_list,
    resolve_benchmark,
)

__all__ = ["BenchmarkReport", "SplitReport", "check_benchmark", "build_file_lists", "prepare_main"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass
class SplitReport:
    """Check result of one list file."""

    split: str
    list_file: str
    entries: int | None = None  # None: the list could not be read
    expected: int | None = None
    classes: int | None = None
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    bad_labels: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        count_ok = self.expected is None or self.entries == self.expected
        return (
            self.entries is not None
            and count_ok
            and not (self.missing or self.unreadable or self.bad_labels)
        )


@dataclass
class BenchmarkReport:
    """Result of :func:`check_benchmark`; ``str(report)`` is a table plus the problems found."""

    name: str
    root: str
    splits: list[SplitReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    max_examples: int = 5

    @property
    def ok(self) -> bool:
        return not self.problems and all(s.ok for s in self.splits)

    def format(self) -> str:
        def cell(v):
            return "-" if v is None else str(v)

        head = ("split", "entries", "expected", "classes", "missing", "unreadable", "bad label", "")
        rows = [
            (
                s.split, cell(s.entries), cell(s.expected), cell(s.classes), str(len(s.missing)),
                str(len(s.unreadable)), str(len(s.bad_labels)), "ok" if s.ok else "PROBLEM",
            )
            for s in self.splits
        ]  # fmt: skip
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
        lines = [f"benchmark {self.name} under {self.root}", fmt.format(*head)]
        lines += [fmt.format(*r) for r in rows]
        details = list(self.problems)
        for s in self.splits:
            for kind, items in (
                ("missing", s.missing), ("unreadable", s.unreadable), ("bad label", s.bad_labels),
            ):  # fmt: skip
                for item in items[: self.max_examples]:
                    details.append(f"{s.split}: {kind}: {item}")
                if len(items) > self.max_examples:
                    details.append(f"{s.split}: ... {len(items) - self.max_examples} more {kind}")
            if s.entries is not None and s.expected is not None and s.entries != s.expected:
                details.append(f"{s.split}: {s.entries} entries, expected {s.expected}")
        if details:
            lines.append("problems:")
            lines += [f"  - {d}" for d in details]
        lines.append("status: OK" if self.ok else "status: PROBLEMS FOUND")
        return "\n".join(lines)

    __str__ = format


def _readable(path: Path) -> str | None:
    """``None`` if PIL can decode ``path``, else the error text."""
    try:
        with Image.open(path) as im:
            im.load()
    except Exception as err:  # any decoder failure counts as unreadable
        return f"{type(err).__name__}: {err}"
    return None


def check_benchmark(
    root, name: str, *, spec: BenchmarkSpec | None = None, verify_images: bool = True,
    max_examples: int = 5,
) -> BenchmarkReport:  # fmt: skip
    """Check a benchmark tree against its file lists; report problems, never raise for them.

    Args:
        root: Data root.
        name: Registry name (ignored when ``spec`` is given).
        spec: Explicit spec (default: :func:`resolve_benchmark` of ``name`` under ``root``).
        verify_images: Decode every image (slow on the big benchmarks); ``False`` only checks
            that the files exist.
        max_examples: Offending paths listed per kind and split in the formatted report.

    Returns:
        A :class:`BenchmarkReport`: one row per split (entries vs expected size, classes used,
        missing / unreadable files, labels outside the class map) plus general problems
        (missing root, list or class map, unseen classes that differ from the published ones).
    """
    root = Path(root)
    spec = spec or resolve_benchmark(root, name)
    report = BenchmarkReport(spec.name, str(root), max_examples=max_examples)
    if not root.is_dir():
        report.problems.append(f"root {root} does not exist\n{spec.layout(root)}")
        return report
    maps: dict[str, list[str] | None] = {}
    for cmap in (spec.class_names_train, spec.class_names_test):
        try:
            maps[cmap] = read_class_names(root / cmap)
        except (OSError, ValueError) as err:
            maps[cmap] = None
            report.problems.append(f"class map {root / cmap}: {err}")
    train_names, test_names = maps[spec.class_names_train], maps[spec.class_names_test]
    if test_names is not None and set(test_names) != set(spec.unseen_classes):
        extra = sorted(set(test_names) - set(spec.unseen_classes))
        lacking = sorted(set(spec.unseen_classes) - set(test_names))
        report.problems.append(
            f"unseen classes differ from the published split: extra {extra}, missing {lacking}"
        )
    if train_names is not None and test_names is not None and set(train_names) & set(test_names):
        report.problems.append(
            f"seen and unseen classes overlap: {sorted(set(train_names) & set(test_names))}"
        )
    if (
        train_names is not None
        and spec.expected_train_classes is not None
        and len(train_names) != spec.expected_train_classes
    ):
        report.problems.append(
            f"{len(train_names)} seen classes in {spec.class_names_train}, "
            f"expected {spec.expected_train_classes}"
        )
    images = root / spec.image_root
    for split, (lst, cmap, expected) in spec.splits().items():
        row = SplitReport(split, lst, expected=expected)
        report.splits.append(row)
        try:
            entries = read_file_list(root / lst)
        except (OSError, ValueError) as err:
            report.problems.append(f"{split}: {err}")
            continue
        row.entries = len(entries)
        row.classes = len({label for _, label in entries})
        n_classes = len(maps[cmap]) if maps[cmap] is not None else None
        for lineno, (rel, label) in enumerate(entries, 1):
            if n_classes is not None and label >= n_classes:
                row.bad_labels.append(f"{rel} (label {label}, {n_classes} classes; entry {lineno})")
            path = images / rel
            if not path.is_file():
                row.missing.append(str(path))
            elif verify_images:
                err = _readable(path)
                if err is not None:
                    row.unreadable.append(f"{path} ({err})")
    return report


def _class_folders(raw: Path, domain: str) -> dict[str, list[Path]]:
    base = raw / domain
    if not base.is_dir():
        raise FileNotFoundError(
            f"raw download folder not found: {base} (expected <raw>/sketch/<class>/* and "
            "<raw>/photo/<class>/*)"
        )
    out = {}
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        files = sorted(
            p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if files:
            out[folder.name] = files
    return out


def build_file_lists(
    raw_root, out_root, spec_or_unseen_classes, *, sketch_dir: str = "sketch",
    photo_dir: str = "photo", overwrite: bool = False,
) -> dict[str, int]:  # fmt: skip
    """Write a benchmark's file lists and class maps from a raw class-per-folder download.

    Classes are the folder names under ``<raw>/<sketch_dir>`` and ``<raw>/<photo_dir>`` (a class
    must have both sketches and photos). The published unseen classes go to the test lists
    (``*_zero``, ids in ``cname_cid_zero.txt``), every other class to the training lists (ids in
    ``cname_cid.txt``); ids follow sorted class names. Image paths are written relative to the
    spec's image root ``<out_root>/<image_root>`` (``..`` segments if the download lies
    elsewhere), so no image is copied.

    Args:
        raw_root: The raw download.
        out_root: Data root to write into (the spec's list paths are relative to it).
        spec_or_unseen_classes: A :class:`BenchmarkSpec`, or a list of unseen class names, in
            which case the mini-benchmark's layout (``zeroshot/sketch_filelist_train.txt``, ...)
            is used with the download itself as image root.
        sketch_dir: Sketch folder name inside ``raw_root``.
        photo_dir: Photo folder name inside ``raw_root``.
        overwrite: Replace existing list files (default: refuse).

    Returns:
        ``{list or class-map path: number of lines}`` of the files written.

    Raises:
        FileNotFoundError: ``raw_root/sketch_dir`` or ``raw_root/photo_dir`` missing.
        ValueError: Unseen classes absent from the download, or no seen class left.
        FileExistsError: A list file exists and ``overwrite`` is false.
    """
    raw, out = Path(raw_root), Path(out_root)
    if isinstance(spec_or_unseen_classes, BenchmarkSpec):
        spec = spec_or_unseen_classes
    else:
        from dataclasses import replace

        from amalib.data.benchmarks import mini_benchmark_spec

        spec = replace(
            mini_benchmark_spec(),
            name="custom",
            unseen_classes=tuple(spec_or_unseen_classes),
            pretrain_photos=None,
        )
    sketches, photos = _class_folders(raw, sketch_dir), _class_folders(raw, photo_dir)
    classes = sorted(set(sketches) & set(photos))
    only_one = sorted(set(sketches) ^ set(photos))
    unseen = set(spec.unseen_classes)
    absent = sorted(unseen - set(classes))
    if absent:
        raise ValueError(
            f"unseen classes of {spec.name!r} without both sketches and photos in {raw}: {absent}"
            + (f" (classes found in only one domain: {only_one})" if only_one else "")
        )
    seen_names = [c for c in classes if c not in unseen]
    test_names = [c for c in classes if c in unseen]
    if not seen_names:
        raise ValueError(f"no seen (training) class left in {raw}")
    image_root = out / spec.image_root
    written: dict[str, int] = {}

    def rel(path: Path) -> str:
        return Path(os.path.relpath(path.resolve(), image_root.resolve())).as_posix()

    plan = {
        spec.class_names_train: [f"{n} {i}" for i, n in enumerate(seen_names)],
        spec.class_names_test: [f"{n} {i}" for i, n in enumerate(test_names)],
    }
    for lst, files, names in (
        (spec.sketch_train, sketches, seen_names), (spec.photo_train, photos, seen_names),
        (spec.sketch_test, sketches, test_names), (spec.photo_test, photos, test_names),
    ):  # fmt: skip
        plan[lst] = [f"{rel(p)} {i}" for i, n in enumerate(names) for p in files[n]]
    if not overwrite:
        exists = [str(out / p) for p in plan if (out / p).exists()]
        if exists:
            raise FileExistsError(f"refusing to overwrite existing lists: {exists}")
    for target, lines in plan.items():
        path = out / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        written[str(path)] = len(lines)
    return written


def prepare_main(name: str, root, build_from=None, *, verify_images: bool = True) -> int:
    """Entry point of ``amalib prepare``: optionally build lists, then check and print a report.

    Args:
        name: Benchmark name (``sketchy21``, ``sketchy25``, ``tuberlin``, ``quickdraw``, ``mini``).
        root: Data root.
        build_from: Raw class-per-folder download to build the lists from first (optional).
        verify_images: Decode every image during the check.

    Returns:
        Exit code: 0 when the check found no problem, 1 otherwise, 2 when the lists could not be
        built.
    """
    spec = resolve_benchmark(root, name)
    if build_from is not None:
        try:
            written = build_file_lists(build_from, root, spec)
        except (OSError, ValueError) as err:
            import sys

            from amalib.errors import one_line

            print(f"error: could not build the file lists from {build_from}: {one_line(str(err))}",
                  file=sys.stderr)
            return 2
        for path, n in written.items():
            print(f"wrote {path} ({n} lines)")
    report = check_benchmark(root, name, spec=spec, verify_images=verify_images)
    print(report.format())
    return 0 if report.ok else 1
