"""Tests of the preparation check and of building file lists from class folders."""

import pytest

from amalib.data.benchmarks import get_benchmark, read_class_names, read_file_list
from amalib.data.prepare import build_file_lists, check_benchmark, prepare_main


def _row(report, split):
    return next(r for r in report.splits if r.split == split)


def test_check_reports_missing_unreadable_and_bad_label(make_tree):
    root, spec, entries = make_tree("tuberlin")
    images = root / spec.image_root
    (images / entries["sketch_train"][0][0]).unlink()  # missing
    (images / entries["photo_test"][1][0]).write_bytes(b"not an image at all")  # unreadable
    png = images / entries["sketch_test"][0][0]
    png.write_bytes(png.read_bytes()[:40])  # truncated
    lst = root / spec.photo_train
    lines = lst.read_text().splitlines()
    lines[0] = lines[0].rsplit(" ", 1)[0] + " 7"  # only 2 seen classes
    lst.write_text("\n".join(lines) + "\n")

    report = check_benchmark(root, "tuberlin", spec=spec)  # must not raise
    assert not report.ok
    assert len(_row(report, "sketch_train").missing) == 1
    assert len(_row(report, "photo_test").unreadable) == 1
    assert len(_row(report, "sketch_test").unreadable) == 1
    bad = _row(report, "photo_train").bad_labels
    assert len(bad) == 1 and "label 7" in bad[0]
    text = report.format()
    assert "PROBLEM" in text and "hot air balloon" in text  # offending paths are shown
    assert str(report) == text


def test_check_reports_count_mismatch_and_unseen_class_mismatch(make_tree):
    root, spec, _ = make_tree("sketchy21")
    report = check_benchmark(root, "sketchy21")  # the published sizes, not the tiny ones
    assert not report.ok
    assert _row(report, "sketch_test").expected == 12694
    assert _row(report, "sketch_test").entries == 4
    assert any("unseen classes differ" in p for p in report.problems)
    assert "expected 12694" in report.format()


def test_check_missing_root_and_missing_list_are_reported(tmp_path, make_tree):
    report = check_benchmark(tmp_path / "absent", "quickdraw")
    assert not report.ok and "does not exist" in report.problems[0]
    assert "QuickDraw/zeroshot/sketch_train.txt" in report.problems[0]  # the expected layout
    root, spec, _ = make_tree("quickdraw")
    (root / spec.sketch_test).unlink()
    report = check_benchmark(root, "quickdraw", spec=spec)
    assert not report.ok
    assert _row(report, "sketch_test").entries is None
    assert any("sketch_zero.txt" in p for p in report.problems)


def _raw_download(write_image, raw, classes, per_class=2):
    for c in classes:
        for i in range(per_class):
            write_image(raw / "sketch" / c / f"{i}.png", seed=i, sketch=True)
            write_image(raw / "photo" / c / f"{i}.jpg", seed=i)


def test_build_file_lists_from_class_folders_tuberlin(tmp_path, image_writer):
    spec = get_benchmark("tuberlin")
    seen = ["airplane", "alarm clock", "zebra"]
    raw = tmp_path / "data" / "TUBerlin" / "raw"
    _raw_download(image_writer, raw, seen + list(spec.unseen_classes))
    root = tmp_path / "data"
    written = build_file_lists(raw, root, spec)
    assert len(written) == 6
    assert read_class_names(root / spec.class_names_train) == sorted(seen)
    test_names = read_class_names(root / spec.class_names_test)
    assert sorted(test_names) == sorted(spec.unseen_classes)
    for lst, names in ((spec.sketch_train, sorted(seen)), (spec.photo_test, test_names)):
        entries = read_file_list(root / lst)
        assert len(entries) == 2 * len(names)
        for rel, label in entries:
            assert rel.split("/")[-2] == names[label]  # folder = class of the label
            assert (root / spec.image_root / rel).is_file()
    from dataclasses import replace

    tiny = replace(spec, expected_train_classes=3, expected_train_sketches=6,
                   expected_test_sketches=60, expected_test_photos=60)  # fmt: skip
    assert check_benchmark(root, "tuberlin", spec=tiny).ok
    with pytest.raises(FileExistsError):
        build_file_lists(raw, root, spec)


def test_build_file_lists_with_unseen_list_and_missing_class(tmp_path, image_writer):
    raw = tmp_path / "raw"
    _raw_download(image_writer, raw, ["cat", "dog", "hot air balloon"])
    written = build_file_lists(raw, tmp_path / "out", ["hot air balloon"])
    zero = [p for p in written if p.endswith("sketch_filelist_zero.txt")][0]
    assert written[zero] == 2
    with pytest.raises(ValueError, match="unicorn"):
        build_file_lists(raw, tmp_path / "out2", ["unicorn"])
    with pytest.raises(FileNotFoundError, match="sketch"):
        build_file_lists(tmp_path / "empty", tmp_path / "out3", ["cat"])


def test_prepare_main_exit_codes(make_tree, tmp_path, capsys):
    assert prepare_main("quickdraw", tmp_path / "absent") == 1
    assert "does not exist" in capsys.readouterr().out
    assert prepare_main("tuberlin", tmp_path / "x", build_from=tmp_path / "nothing") == 2
