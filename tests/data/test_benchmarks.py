"""Tests of the file-list readers and the benchmark registry (amalib.data.benchmarks)."""

import pytest

from amalib.data.benchmarks import (
    BENCHMARKS,
    get_benchmark,
    mini_benchmark_spec,
    read_class_names,
    read_file_list,
    resolve_benchmark,
)
from amalib.data.datasets import build_eval_sets, build_training_sets
from amalib.data.prepare import check_benchmark


def _reference_parse(line: str):
    """The obvious way: the label is the last whitespace-separated token, the path the rest."""
    stripped = line.strip()
    i = len(stripped) - 1
    while not stripped[i].isspace():
        i -= 1
    return stripped[:i].rstrip(), int(stripped[i + 1 :])


LINES = [
    "256x256/sketch/tx_000000000000_ready/airplane/n02691156_10151-1.png 0",
    "png_ready/hot air balloon/7.png 14",
    "ImageResized_ready/space shuttle/img 3.JPEG\t25",
    "images/palm tree/x.jpg   3  ",
    "a/b.png 12\r",
]


@pytest.mark.parametrize("line", LINES)
def test_read_file_list_matches_reference(tmp_path, line):
    f = tmp_path / "list.txt"
    f.write_bytes(f"{line}\n\n".encode())
    assert read_file_list(f) == [_reference_parse(line)]


def test_read_file_list_keeps_order_and_skips_blank_lines(tmp_path):
    f = tmp_path / "list.txt"
    f.write_text("\n".join(LINES[:3]) + "\n\n   \n" + "\n".join(LINES[3:]) + "\n")
    assert read_file_list(f) == [_reference_parse(line) for line in LINES]


@pytest.mark.parametrize("bad", ["just/a/path.png", "x.png label", "x.png -1", "7"])
def test_read_file_list_bad_line_names_file_and_line(tmp_path, bad):
    f = tmp_path / "bad_list.txt"
    f.write_text(f"ok.png 0\n{bad}\n")
    with pytest.raises(ValueError, match=r"bad_list\.txt:2"):
        read_file_list(f)


def test_read_file_list_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        read_file_list(tmp_path / "nowhere.txt")


def test_read_class_names_orders_by_id_and_keeps_spaces(tmp_path):
    f = tmp_path / "cname_cid_zero.txt"
    f.write_text("hot air balloon 2\nant 0\nbottle opener 1\n")
    assert read_class_names(f) == ["ant", "bottle opener", "hot air balloon"]


@pytest.mark.parametrize(
    "content, message",
    [("a 0\nb 0\n", "id 0"), ("a 0\nb 2\n", "0..1"), ("a 0\na 1\n", "twice")],
)
def test_read_class_names_rejects_bad_maps(tmp_path, content, message):
    f = tmp_path / "cname_cid.txt"
    f.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_class_names(f)


# Published facts (docs/method.md), typed here independently of the registry.
PUBLISHED = {
    "sketchy21": (21, 12694, 12553, 104),
    "sketchy25": (25, 15229, 17101, 100),
    "tuberlin": (30, 2400, 27989, 220),
    "quickdraw": (30, 92291, 54151, 80),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_registry_matches_published_splits(name):
    spec = get_benchmark(name)
    n_unseen, n_sk, n_ph, n_train = PUBLISHED[name]
    assert len(spec.unseen_classes) == len(set(spec.unseen_classes)) == n_unseen
    assert (spec.expected_test_sketches, spec.expected_test_photos) == (n_sk, n_ph)
    assert spec.expected_train_classes == n_train


def test_registry_paths_of_the_real_layouts():
    s21, s25 = get_benchmark("sketchy21"), get_benchmark("sketchy25")
    assert s21.sketch_train == "Sketchy/zeroshot0/sketch_tx_000000000000_ready_filelist_train.txt"
    assert s21.photo_test == "Sketchy/zeroshot0/all_photo_filelist_zero.txt"
    assert s25.class_names_test == "Sketchy/zeroshot1/cname_cid_zero.txt"
    tu = get_benchmark("tuberlin")
    assert tu.photo_train == "TUBerlin/zeroshot/ImageResized_ready_filelist_train.txt"
    assert tu.sketch_test == "TUBerlin/zeroshot/png_ready_filelist_zero.txt"
    assert "hot air balloon" in tu.unseen_classes
    qd = get_benchmark("quickdraw")
    assert qd.sketch_train == "QuickDraw/zeroshot/sketch_train.txt"
    assert qd.photo_test == "QuickDraw/zeroshot/all_photo_zero.txt"
    assert {"scissors", "windmill", "tree"} <= set(s21.unseen_classes) & set(s25.unseen_classes)


def test_get_benchmark_unknown_lists_valid_names():
    with pytest.raises(KeyError) as info:
        get_benchmark("sketchy")
    for name in BENCHMARKS:
        assert name in str(info.value)
    assert get_benchmark("TUBerlin") is BENCHMARKS["tuberlin"]


def test_mini_spec_follows_generator_parameters(tmp_path):
    spec = mini_benchmark_spec(n_seen=5, n_unseen=3, test_sketches_per_class=4)
    assert len(spec.unseen_classes) == 3
    assert spec.expected_test_sketches == 12
    assert spec.expected_train_classes == 5
    assert spec.sketch_train == "zeroshot/sketch_filelist_train.txt"
    assert spec.pretrain_photos == "pretrain/photo_filelist.txt"
    # Without a manifest the registry default is used.
    assert resolve_benchmark(tmp_path, "mini") == BENCHMARKS["mini"]


@pytest.mark.parametrize("name", ["sketchy21", "sketchy25", "tuberlin", "quickdraw"])
def test_tiny_tree_in_each_real_layout_reads_back(make_tree, name):
    root, spec, entries = make_tree(name)
    evals = build_eval_sets(root, spec, transform=None)
    sketch_train, photo_train = build_training_sets(root, spec, None, None)
    for split in ("sketch_test", "photo_test"):
        ds = evals[split]
        assert ds.paths == [p for p, _ in entries[split]]
        assert ds.labels.tolist() == [y for _, y in entries[split]]
        image, label, index = ds[len(ds) - 1]
        assert image.size == (20, 20) and label == entries[split][-1][1] and index == len(ds) - 1
        assert ds.class_names == list(spec.unseen_classes)
    assert sketch_train.paths == [p for p, _ in entries["sketch_train"]]
    assert photo_train.paths == [p for p, _ in entries["photo_train"]]
    report = check_benchmark(root, name, spec=spec)
    assert report.ok, report.format()
