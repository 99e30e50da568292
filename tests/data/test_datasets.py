"""Tests of the datasets: no labels in the training path, broken images skipped and counted."""

import logging

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from amalib.data.datasets import (
    LabelledImages,
    UnlabelledImages,
    build_eval_sets,
    build_training_sets,
    collate_skip_broken,
)
from amalib.data.transforms import collate_multicrop, eval_transform

LABELS = [17, 42, 42, 99]  # distinctive values, so that a stored copy would be found


@pytest.fixture
def listed(tmp_path, image_writer):
    root = tmp_path / "imgs"
    lines = []
    for i, y in enumerate(LABELS):
        rel = f"class {y}/img {i}.png"
        image_writer(root / rel, seed=i)
        lines.append(f"{rel} {y}")
    lst = tmp_path / "list.txt"
    lst.write_text("\n".join(lines) + "\n")
    return root, lst


def _contains_labels(value) -> bool:
    if isinstance(value, torch.Tensor | np.ndarray):
        return np.isin(np.asarray(value).ravel(), LABELS[:1] + LABELS[-1:]).any()
    if isinstance(value, list | tuple | set):
        return any(_contains_labels(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_labels(v) for v in value.values())
    return isinstance(value, int) and value in (17, 99)


def test_unlabelled_images_return_image_and_index_only(listed):
    root, lst = listed
    ds = UnlabelledImages(root, lst, transform=eval_transform(20, 16))
    assert len(ds) == 4
    for i in range(len(ds)):
        sample = ds[i]
        assert len(sample) == 2
        assert sample[0].shape == (3, 16, 16) and sample[1] == i
    assert not any("label" in name for name in vars(ds))
    assert not any(_contains_labels(v) for v in vars(ds).values())


def test_training_loader_yields_no_labels(make_tree):
    from amalib.data.transforms import MultiCropTransform

    root, spec, entries = make_tree("sketchy25", per_class=3)
    t = MultiCropTransform(global_size=16, local_size=8, n_local=2, domain="sketch")
    sketch, photo = build_training_sets(root, spec, t, t)
    batch = next(iter(DataLoader(sketch, batch_size=4, collate_fn=collate_multicrop)))
    assert len(batch) == 2  # (crops, indices) — nothing else
    crops, indices = batch
    assert [c.shape[-1] for c in crops] == [16, 16, 8, 8]
    assert indices.tolist() == [0, 1, 2, 3]


def test_labelled_images_and_class_map_check(listed):
    root, lst = listed
    ds = LabelledImages(root, lst, transform=eval_transform(20, 16))
    assert ds.labels.tolist() == LABELS
    image, label, index = ds[2]
    assert (label, index) == (42, 2) and image.shape == (3, 16, 16)
    with pytest.raises(ValueError, match="only 3 classes"):
        LabelledImages(root, lst, class_names=["a", "b", "c"])


def _break(root, caplog):
    (root / "class 42/img 1.png").write_bytes(b"\x89PNG garbage")
    good = (root / "class 42/img 2.png").read_bytes()
    (root / "class 42/img 2.png").write_bytes(good[: len(good) // 2])  # truncated
    caplog.set_level(logging.WARNING, logger="amalib.data.datasets")


def test_broken_images_are_skipped_logged_and_counted(listed, caplog):
    root, lst = listed
    _break(root, caplog)
    ds = LabelledImages(root, lst, transform=eval_transform(20, 16))
    batch = collate_skip_broken([ds[i] for i in range(len(ds))])
    images, labels, indices = batch
    assert images.shape == (2, 3, 16, 16)
    assert labels.tolist() == [17, 99] and indices.tolist() == [0, 3]
    assert ds.n_skipped == 2
    assert sorted(p.rsplit("/", 1)[-1] for p in ds.skipped_paths) == ["img 1.png", "img 2.png"]
    assert "img 1.png" in caplog.text and "img 2.png" in caplog.text
    assert collate_skip_broken([None, None]) is None


def test_skip_count_reaches_the_parent_from_loader_workers(listed, caplog):
    root, lst = listed
    _break(root, caplog)
    ds = UnlabelledImages(root, lst, transform=eval_transform(20, 16))
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_skip_broken)
    seen = [i for _, idx in loader for i in idx.tolist()]
    assert seen == [0, 3]
    assert ds.n_skipped == 2


def test_missing_root_or_list_names_path_and_layout(tmp_path, make_tree):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        UnlabelledImages(tmp_path / "nowhere", tmp_path / "list.txt")
    with pytest.raises(FileNotFoundError, match=r"list\.txt.*relative/path label"):
        UnlabelledImages(tmp_path, tmp_path / "list.txt")
    root, spec, _ = make_tree("tuberlin")
    (root / spec.photo_train).unlink()
    with pytest.raises(FileNotFoundError) as info:
        build_training_sets(root, spec, None, None)
    assert "ImageResized_ready_filelist_train.txt" in str(info.value)
    assert "expected layout" in str(info.value)
    with pytest.raises(FileNotFoundError, match="benchmark root not found"):
        build_eval_sets(tmp_path / "absent", spec, None)


def test_training_sets_have_their_own_sizes(make_tree, tmp_path):
    root, spec, entries = make_tree("quickdraw", per_class=2)
    lst = root / spec.photo_train
    lst.write_text(lst.read_text() + lst.read_text())  # photos twice as many as sketches
    sketch, photo = build_training_sets(root, spec, None, None)
    assert (len(sketch), len(photo)) == (4, 8)


def test_training_set_replaces_unreadable_images_with_readable_ones(listed, caplog):
    root, lst = listed
    _break(root, caplog)  # images 1 and 2 are unreadable
    ds = UnlabelledImages(root, lst, transform=eval_transform(20, 16), replace_unreadable=True)
    samples = [ds[i] for i in range(len(ds))]
    assert all(s is not None and s[0].shape == (3, 16, 16) for s in samples)
    indices = [s[1] for s in samples]
    assert indices[0] == 0 and indices[3] == 3
    assert set(indices[1:3]) <= {0, 3}  # a readable sample, returned with its own index
    assert ds.n_replaced == 2 and ds.n_skipped == 2
    assert [ds[1][1], ds[2][1]] == indices[1:3]  # the same replacement every time
    assert ds.n_skipped == 2  # known-bad files are not decoded again
    assert "replaced unreadable image" in caplog.text and "img 1.png" in caplog.text
    # A whole training batch keeps its size through the loader.
    images, idx = next(iter(DataLoader(ds, batch_size=4)))
    assert images.shape[0] == 4 and len(idx) == 4


def test_training_set_with_nothing_readable_names_the_list(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(3):
        (root / f"{i}.png").write_bytes(b"not a png")
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"{i}.png 0\n" for i in range(3)))
    ds = UnlabelledImages(root, lst, replace_unreadable=True)
    with pytest.raises(RuntimeError, match=r"list\.txt.*0\.png is unreadable"):
        ds[0]
