"""Serving and protocols end to end on the tiny benchmark: index build, retrieve, eval --protocol.

The checkpoints are random-init 2-block ViTs written in the `amalib train` layout, so nothing
trains here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("faiss")

from amalib.cli import main  # noqa: E402
from amalib.retrieval.gallery import (  # noqa: E402
    backbone_fingerprint,
    build_gallery_index,
    folder_gallery,
    load_query_model,
    parse_gallery,
)
from amalib.retrieval.index import GalleryIndex, GalleryIndexError  # noqa: E402


def write_checkpoint(config: dict, path, seed: int = 0, **model):
    """A teacher-only checkpoint in the `amalib train` layout (what `load_trained_backbone` reads)."""
    from amalib.checkpoint_io import save_checkpoint
    from amalib.models import create_vit

    config = {**config, "model": {**config["model"], **model}}
    m = config["model"]
    torch.manual_seed(seed)
    backbone = create_vit(m["arch"], patch_size=m["patch_size"], img_size=m["img_size"],
                          stem=m.get("stem", "patch"))
    teacher = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    return save_checkpoint({"config": config, "teacher": teacher}, path)


@pytest.fixture(scope="module")
def checkpoints(tiny_root, tmp_path_factory):
    from tiny_benchmark import tiny_overrides

    from amalib.config import load_config

    cfg = load_config("mini", tiny_overrides(tiny_root))
    folder = tmp_path_factory.mktemp("ckpt")
    return {"a": write_checkpoint(cfg, folder / "a.pth", seed=0),
            "b": write_checkpoint(cfg, folder / "b.pth", seed=1),
            "wide": write_checkpoint(cfg, folder / "wide.pth", arch="vit_mini")}


@pytest.fixture(scope="module")
def test_index(checkpoints, tmp_path_factory):
    index = build_gallery_index(checkpoints["a"], "mini:test", progress=False)
    return index, index.save(tmp_path_factory.mktemp("idx") / "test.amaidx")


@pytest.fixture
def image_writer():
    def write(path, seed):
        from PIL import Image

        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(seed).integers(0, 256, (20, 20, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)

    return write


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------- galleries


def test_folder_gallery_labels_by_subfolder(tmp_path, image_writer):
    for rel in ("cat/1.png", "cat/sub/2.jpg", "dog/3.png"):
        image_writer(tmp_path / "g" / rel, seed=1)
    (tmp_path / "g" / "notes.txt").write_text("not an image")
    root, entries, names = folder_gallery(tmp_path / "g")
    assert names == ["cat", "dog"]
    assert entries == [("cat/1.png", 0), ("cat/sub/2.jpg", 0), ("dog/3.png", 1)]
    image_writer(tmp_path / "g" / "loose.png", seed=2)  # one image outside a class folder
    _, entries, names = folder_gallery(tmp_path / "g")
    assert names is None and all(label == -1 for _, label in entries)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no image"):
        folder_gallery(tmp_path / "empty")


def test_parse_gallery(tmp_path):
    assert parse_gallery("mini:test") == ("mini", "test")
    assert parse_gallery("QuickDraw:all") == ("quickdraw", "all")
    assert parse_gallery(str(tmp_path)) == tmp_path
    with pytest.raises(FileNotFoundError, match="unknown split 'zero'.*test, seen, all"):
        parse_gallery("mini:zero")
    with pytest.raises(FileNotFoundError, match="neither a folder.*BENCHMARK:SPLIT"):
        parse_gallery(str(tmp_path / "absent"))


def test_benchmark_gallery_index_holds_the_test_photos(test_index, tiny_root):
    index, path = test_index
    from tiny_benchmark import TINY_DATA

    assert len(index) == 2 * TINY_DATA["test_photos_per_class"] and index.kind == "flat"
    assert all((tiny_root / p).is_file() for p in index.paths) and index.root == str(tiny_root)
    assert sorted(set(index.labels.tolist())) == [0, 1] and len(index.class_names) == 2
    prov = GalleryIndex.load(path).provenance
    assert prov["gallery"]["source"] == "mini:test" and prov["transform"]["crop"] == 32
    assert len(prov["checkpoint"]["weights_sha256"]) == 64 and prov["model"]["arch"] == "vit_micro"


def test_generalised_gallery_shifts_the_seen_labels(checkpoints):
    from tiny_benchmark import TINY_DATA

    index = build_gallery_index(checkpoints["a"], "mini:all", kind="hnsw", progress=False)
    n_unseen = 2 * TINY_DATA["test_photos_per_class"]
    assert len(index) == n_unseen + 4 * TINY_DATA["photos_per_class"]
    assert set(index.labels[:n_unseen].tolist()) == {0, 1}
    assert set(index.labels[n_unseen:].tolist()) == {2, 3, 4, 5}  # seen ids 0..3 + 2
    assert len(index.class_names) == 6 and index.provenance["gallery"]["n_unseen_classes"] == 2


def test_fingerprint_depends_on_the_weights_not_the_file(checkpoints, tmp_path):
    import shutil

    from amalib.retrieval.evaluate import load_trained_backbone

    shutil.copy(checkpoints["a"], tmp_path / "moved.pth")
    a = backbone_fingerprint(load_trained_backbone(checkpoints["a"])[0])
    assert a == backbone_fingerprint(load_trained_backbone(tmp_path / "moved.pth")[0])
    assert a != backbone_fingerprint(load_trained_backbone(checkpoints["b"])[0])


def test_query_model_must_be_the_index_model(test_index, checkpoints):
    index, path = test_index
    loaded = GalleryIndex.load(path)
    backbone, transform = load_query_model(loaded)  # the recorded checkpoint
    assert backbone_fingerprint(backbone) == index.provenance["checkpoint"]["weights_sha256"]
    with pytest.raises(GalleryIndexError, match="b.pth is not the model .*test.amaidx.*"
                                                "amalib index build --checkpoint .*b.pth"):
        load_query_model(loaded, checkpoints["b"])
    with pytest.raises(GalleryIndexError, match="192-d features but .*test.amaidx holds 48-d"):
        load_query_model(loaded, checkpoints["wide"])


# --------------------------------------------------------------------------- command line


def test_cli_index_build_info_and_retrieve(capsys, checkpoints, tiny_root, tmp_path):
    out_file = tmp_path / "g.amaidx"
    code, out, err = _run(capsys, "index", "build", "--checkpoint", checkpoints["a"],
                          "--gallery", "mini:test", "--out", out_file, "--kind", "ivf",
                          "--param", "nlist=2", "--no-progress")
    assert code == 0, err
    assert "indexed 8 images" in out and "'nlist': 2" in out
    code, out, err = _run(capsys, "index", "info", out_file)
    assert code == 0 and "8 images, 48-d, ivf" in out and "a.pth" in out
    sketches = sorted((tiny_root / "sketch").rglob("*.png"))[:2]
    code, out, err = _run(capsys, "retrieve", "--index", out_file, "--sketch", *sketches,
                          "--topk", "3", "--json", tmp_path / "r.json", "--out", tmp_path / "r.png")
    assert code == 0, err
    assert out.count("cosine") == 6 and f"{sketches[0]}:" in out
    results = json.loads((tmp_path / "r.json").read_text())
    assert [len(r["results"]) for r in results] == [3, 3]
    assert results[0]["results"][0]["path"].startswith("photo/")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    # The same ranking as extracting the gallery now (retrieve --checkpoint, no index).
    code, out2, err = _run(capsys, "retrieve", "--checkpoint", checkpoints["a"], "--sketch",
                           sketches[0], "--k", "3", "--out", tmp_path / "r2.png")
    assert code == 0, err
    assert [line.split()[1] for line in out2.splitlines()[:3]] == \
        [r["path"] for r in results[0]["results"]]


def test_cli_retrieve_strokes_from_an_index(capsys, test_index, tmp_path):
    """A sketch-pad drawing against a built index: rendered, embedded like a file, hits marked."""
    from amalib.data.strokes import example_strokes, save_strokes

    index, path = test_index
    drawing = save_strokes(tmp_path / "drawing.json", example_strokes("bar_wheels"),
                           canvas_size=256)
    name = index.class_names[0]
    code, out, err = _run(capsys, "retrieve", "--index", path, "--strokes", drawing, "--k", "3",
                          "--label", name, "--json", tmp_path / "r.json",
                          "--out", tmp_path / "r.png")
    assert code == 0, err
    assert out.count("  hit") + out.count("  miss") == 3 and f"photos of {name}" in out
    [result] = json.loads((tmp_path / "r.json").read_text())
    assert result["query"] == "strokes" and result["query_label"] == name
    assert [r["hit"] for r in result["results"]] == [r["label"] == name for r in result["results"]]
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit):  # one kind of query per call
        main(["retrieve", "--index", str(path), "--strokes", str(drawing), "--sketch", "a.png"])
    assert "not allowed with argument" in capsys.readouterr().err
    code, _, err = _run(capsys, "retrieve", "--index", path, "--strokes", drawing,
                        "--label", "unicorn")
    assert code == 2 and "unknown class 'unicorn'" in err


def test_cli_index_from_a_folder_of_images(capsys, checkpoints, tmp_path, image_writer):
    for i, rel in enumerate(("boats/a.png", "boats/b.png", "trees/c.jpg")):
        image_writer(tmp_path / "photos" / rel, seed=i)
    code, out, err = _run(capsys, "index", "build", "--checkpoint", checkpoints["a"],
                          "--gallery", tmp_path / "photos", "--out", tmp_path / "f.amaidx",
                          "--no-progress")
    assert code == 0, err
    code, out, err = _run(capsys, "retrieve", "--index", tmp_path / "f.amaidx", "--sketch",
                          tmp_path / "photos" / "boats" / "a.png", "--k", "2")
    assert code == 0, err
    assert out.splitlines()[0].startswith(" 1. boats/a.png  (boats, cosine 1.000)")


def test_cli_serving_mistakes_are_one_line_errors(capsys, checkpoints, test_index, tmp_path):
    _, path = test_index
    sketch = tmp_path / "s.png"
    sketch.write_bytes(b"")
    cases = [
        (("retrieve", "--index", tmp_path / "none.amaidx", "--sketch", sketch),
         "gallery index not found"),
        (("retrieve", "--index", path, "--checkpoint", checkpoints["b"], "--sketch", sketch),
         "is not the model"),
        (("retrieve", "--sketch", sketch), "needs --index"),
        (("retrieve", "--index", path, "--gallery", "mini:seen", "--sketch", sketch),
         "--gallery and --set"),
        (("index", "build", "--checkpoint", checkpoints["a"], "--gallery", "mini:zero",
          "--out", tmp_path / "x.amaidx"), "unknown split"),
        (("index", "build", "--checkpoint", checkpoints["a"], "--out", tmp_path / "x.amaidx",
          "--kind", "hnsw", "--param", "efSearch=3"), "unknown parameter(s) efSearch"),
        (("index", "build", "--checkpoint", checkpoints["a"], "--out", tmp_path / "x.amaidx",
          "--param", "nprobe"), "expected KEY=INTEGER"),
    ]
    for argv, message in cases:
        code, _, err = _run(capsys, *argv)
        assert code == 2 and message in err and "Traceback" not in err, (argv, err)


@pytest.mark.parametrize("protocol", ["zs", "gzs", "p2s"])
def test_cli_eval_protocols(capsys, checkpoints, tmp_path, protocol):
    from tiny_benchmark import TINY_DATA

    code, out, err = _run(capsys, "eval", "--checkpoint", checkpoints["a"], "--protocol",
                          protocol, "--no-progress", "--hub-k", "3", "--json",
                          tmp_path / "m.json")
    assert code == 0, err
    result = json.loads((tmp_path / "m.json").read_text())
    n_sketches = 2 * TINY_DATA["test_sketches_per_class"]
    n_photos = 2 * TINY_DATA["test_photos_per_class"]
    n_seen = 4 * TINY_DATA["photos_per_class"]
    queries, gallery = {"zs": (n_sketches, n_photos), "p2s": (n_photos, n_sketches),
                        "gzs": (n_sketches, n_photos + n_seen)}[protocol]
    assert result["protocol"] == protocol and result["n_queries"] == queries
    assert result["n_gallery"] == gallery == sum(result["hubness"]["counts_histogram"])
    assert sum(n * c for n, c in enumerate(result["hubness"]["counts_histogram"])) == 3 * queries
    assert [row["AP"] for row in result["per_class"]] == \
        sorted(row["AP"] for row in result["per_class"])
    assert "hardest classes" in out and "hubness (top 3)" in out
    if protocol == "gzs":
        assert "zs" in result and 0 <= result["seen_share@100"] <= 1
        assert "seen-class photos in the top 100" in out
    assert np.isfinite(result["mAP@all"])
