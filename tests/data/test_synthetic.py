"""Tests of the embedded mini-benchmark generator (amalib.data.synthetic)."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from amalib.data import synthetic
from amalib.data.synthetic import (
    BODIES,
    MAX_CLASSES,
    PARTS,
    class_name,
    ensure_mini_benchmark,
    generate_mini_benchmark,
    mini_benchmark_classes,
    render_photo,
    render_sketch,
)

TINY = dict(
    seed=3,
    image_size=32,
    n_seen=4,
    n_unseen=2,
    sketches_per_class=2,
    photos_per_class=3,
    test_sketches_per_class=2,
    test_photos_per_class=2,
    n_pretrain_classes=2,
    pretrain_photos_per_class=2,
    photo_style="busy",  # the trees these tests were written for; calm_tree is the other style
)

LISTS = {
    "zeroshot/sketch_filelist_train.txt": ("n_seen", "sketches_per_class", "zeroshot/cname_cid.txt"),
    "zeroshot/photo_filelist_train.txt": ("n_seen", "photos_per_class", "zeroshot/cname_cid.txt"),
    "zeroshot/sketch_filelist_zero.txt": (
        "n_unseen", "test_sketches_per_class", "zeroshot/cname_cid_zero.txt",
    ),
    "zeroshot/photo_filelist_zero.txt": (
        "n_unseen", "test_photos_per_class", "zeroshot/cname_cid_zero.txt",
    ),
    "pretrain/photo_filelist.txt": (
        "n_pretrain_classes", "pretrain_photos_per_class", "pretrain/cname_cid.txt",
    ),
}  # fmt: skip


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _read_pairs(path: Path) -> list[tuple[str, int]]:
    out = []
    for line in path.read_text().splitlines():
        rel, label = line.rsplit(" ", 1)
        out.append((rel, int(label)))
    return out


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory):
    return generate_mini_benchmark(tmp_path_factory.mktemp("mini") / "bench", workers=1, **TINY)


def test_grammar_names_are_distinct_and_cover_every_pair():
    names = [class_name(k) for k in range(MAX_CLASSES)]
    assert len(set(names)) == MAX_CLASSES == len(BODIES) * len(PARTS)
    expected = {f"{b}_{p}" for b in BODIES for p in PARTS}
    assert set(names) == expected
    with pytest.raises(ValueError):
        class_name(MAX_CLASSES)


def test_default_splits_are_disjoint_and_compositional():
    classes = mini_benchmark_classes(30, 10, 20)
    seen, unseen, pre = (set(classes[k]) for k in ("seen", "unseen", "pretrain"))
    assert (len(seen), len(unseen), len(pre)) == (30, 10, 20)
    assert not (seen & unseen) and not (seen & pre) and not (unseen & pre)
    # Unseen classes are new combinations of bodies and parts that the seen classes show.
    seen_bodies = {n.split("_", 1)[0] for n in seen}
    seen_parts = {n.split("_", 1)[1] for n in seen}
    for name in unseen:
        body, part = name.split("_", 1)
        assert body in seen_bodies and part in seen_parts
    with pytest.raises(ValueError):
        mini_benchmark_classes(100, 40, 20)


def test_layout_counts_and_labels(tiny_tree):
    root = tiny_tree
    classes = mini_benchmark_classes(TINY["n_seen"], TINY["n_unseen"], TINY["n_pretrain_classes"])
    for rel, (n_key, per_key, cmap) in LISTS.items():
        pairs = _read_pairs(root / rel)
        assert len(pairs) == TINY[n_key] * TINY[per_key], rel
        names = [line.rsplit(" ", 1)[0] for line in (root / cmap).read_text().splitlines()]
        ids = [int(line.rsplit(" ", 1)[1]) for line in (root / cmap).read_text().splitlines()]
        assert ids == list(range(TINY[n_key]))
        for path, label in pairs:
            assert (root / path).is_file()
            assert Path(path).parent.name == names[label], (path, label)  # label ↔ folder
        split = {"cname_cid.txt": "seen", "cname_cid_zero.txt": "unseen"}.get(Path(cmap).name)
        if rel.startswith("pretrain"):
            split = "pretrain"
        assert set(names) == set(classes[split])


def test_images_have_the_right_size_mode_and_look(tiny_tree):
    root = tiny_tree
    for rel in ("zeroshot/sketch_filelist_train.txt", "zeroshot/photo_filelist_zero.txt"):
        for path, _ in _read_pairs(root / rel):
            with Image.open(root / path) as im:
                assert im.size == (32, 32)
                assert im.mode == "RGB"
                assert im.format == ("PNG" if path.endswith(".png") else "JPEG")


@pytest.mark.parametrize("k", [0, 7, 33, 58, 149])
def test_sketches_are_dark_strokes_on_white_and_photos_are_not(k):
    name = class_name(k)
    sketch = np.asarray(render_sketch(name, np.random.default_rng(k), 64), np.float32)
    photo = np.asarray(render_photo(name, np.random.default_rng(k), 64), np.float32)
    gray = sketch.mean(2)
    assert (gray > 245).mean() > 0.6  # mostly white paper
    assert (gray < 128).mean() > 0.01  # but there are strokes
    assert np.abs(sketch[..., 0] - sketch[..., 1]).max() == 0  # no colour
    assert (photo.mean(2) > 245).mean() < 0.5


def test_same_seed_gives_same_bytes_whatever_the_workers(tmp_path, tiny_tree):
    again = generate_mini_benchmark(tmp_path / "again", workers=2, **TINY)
    assert _tree_digest(again) == _tree_digest(tiny_tree)


def test_other_seed_gives_other_images(tmp_path, tiny_tree):
    other = generate_mini_benchmark(tmp_path / "other", workers=1, **{**TINY, "seed": 4})
    a, b = _tree_digest(tiny_tree), _tree_digest(other)
    images = [k for k in a if k.endswith((".png", ".jpg"))]
    assert set(a) == set(b)
    assert all(a[k] != b[k] for k in images)


def test_ensure_reuses_matching_tree_and_regenerates_otherwise(tmp_path):
    root = tmp_path / "mini"
    ensure_mini_benchmark(root, workers=1, **TINY)
    marker = root / "marker.txt"
    marker.write_text("still here")
    ensure_mini_benchmark(root, workers=2, **TINY)  # workers do not change the output
    assert marker.exists()
    ensure_mini_benchmark(root, workers=1, **{**TINY, "photos_per_class": 1})
    assert not marker.exists()  # regenerated from scratch
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["params"]["photos_per_class"] == 1
    assert manifest["version"] == synthetic.GENERATOR_VERSION
    assert len(_read_pairs(root / "zeroshot/photo_filelist_train.txt")) == TINY["n_seen"]
    assert not list(tmp_path.glob(".mini.tmp-*"))  # no temporary directory left behind


def test_ensure_rejects_unknown_parameters(tmp_path):
    with pytest.raises(TypeError, match="unknown"):
        ensure_mini_benchmark(tmp_path / "m", n_sketches=3)


def test_never_overwrites_a_foreign_directory(tmp_path):
    root = tmp_path / "precious"
    root.mkdir()
    (root / "thesis.tex").write_text("do not delete")
    with pytest.raises(FileExistsError, match="refusing"):
        generate_mini_benchmark(root, workers=1, **TINY)
    assert (root / "thesis.tex").exists()


def test_mini_benchmark_examples_read_a_few_images_per_class(tiny_tree):
    from amalib.data.synthetic import mini_benchmark_examples

    examples = mini_benchmark_examples(tiny_tree, n_classes=3, per_class=2)
    classes = mini_benchmark_classes(TINY["n_seen"], TINY["n_unseen"], TINY["n_pretrain_classes"])
    assert [e.seen for e in examples] == [True, True, False]  # half each, seen first
    for e in examples:
        assert e.name in classes["seen" if e.seen else "unseen"]
        assert len(e.photos) == len(e.sketches) == 2
        for image in e.photos + e.sketches:
            assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    again = mini_benchmark_examples(tiny_tree, n_classes=3, per_class=2)
    assert [e.name for e in again] == [e.name for e in examples]
    assert all(np.array_equal(a, b) for x, y in zip(again, examples)
               for a, b in zip(x.photos + x.sketches, y.photos + y.sketches))


def test_generated_tree_passes_the_benchmark_check_and_loads(tiny_tree):
    from amalib.data.benchmarks import get_benchmark, resolve_benchmark
    from amalib.data.datasets import build_eval_sets, build_pretrain_set, build_training_sets
    from amalib.data.prepare import check_benchmark

    report = check_benchmark(tiny_tree, "mini")  # sizes from the manifest, not the defaults
    assert report.ok, report.format()
    spec = resolve_benchmark(tiny_tree, "mini")
    sketch, photo = build_training_sets(tiny_tree, spec, None, None)
    assert (len(sketch), len(photo)) == (4 * 2, 4 * 3)
    evals = build_eval_sets(tiny_tree, spec, None)
    assert evals["photo_test"].class_names == sorted(spec.unseen_classes)
    pre = build_pretrain_set(tiny_tree, spec, None)
    assert len(pre) == 2 * 2 and len(pre[3]) == 2
    with pytest.raises(ValueError, match="no pretraining"):
        build_pretrain_set(tiny_tree, get_benchmark("sketchy21"), None)


def test_render_photo_reports_its_background_kind_without_changing_the_image():
    seen_kinds = set()
    for k in range(40):
        plain = np.asarray(render_photo("star_legs", np.random.default_rng(k), 32))
        info: dict = {}
        probed = np.asarray(render_photo("star_legs", np.random.default_rng(k), 32, info=info))
        assert np.array_equal(plain, probed)
        assert info["background"] in range(len(synthetic.BACKGROUND_KINDS))
        seen_kinds.add(info["background"])
    assert seen_kinds == set(range(len(synthetic.BACKGROUND_KINDS)))


@pytest.mark.parametrize("list_file", ["zeroshot/photo_filelist_zero.txt",
                                       "pretrain/photo_filelist.txt"])
def test_photo_background_kinds_re_render_the_listed_photos(tiny_tree, list_file):
    kinds = synthetic.photo_background_kinds(tiny_tree, list_file)
    rows = _read_pairs(tiny_tree / list_file)
    assert kinds.dtype == np.int64 and kinds.shape == (len(rows),)
    classes = mini_benchmark_classes(TINY["n_seen"], TINY["n_unseen"], TINY["n_pretrain_classes"])
    order = classes["seen"] + classes["unseen"] + classes["pretrain"]
    domain = "pretrain_photo" if list_file.startswith("pretrain") else "photo"
    on_disk = np.stack([np.asarray(Image.open(tiny_tree / rel).convert("RGB"), np.float32)
                        for rel, _ in rows])
    for i, ((rel, _), kind) in enumerate(zip(rows, kinds)):
        name, j = Path(rel).parent.name, int(Path(rel).stem.rsplit("_", 1)[1])
        info: dict = {}
        rng = np.random.default_rng([TINY["seed"], synthetic._DOMAIN_CODE[domain],
                                     order.index(name), j])
        again = np.asarray(render_photo(name, rng, TINY["image_size"], info=info), np.float32)
        # The same photo, up to JPEG: much closer to its own file than to any other listed one.
        distances = np.abs(on_disk - again).mean(axis=(1, 2, 3))
        assert distances.argmin() == i and distances[i] < 12
        assert kind == info["background"]


def test_photo_background_kinds_errors(tiny_tree, tmp_path):
    with pytest.raises(ValueError, match="sketches"):
        synthetic.photo_background_kinds(tiny_tree, "zeroshot/sketch_filelist_zero.txt")
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        synthetic.photo_background_kinds(tmp_path, "zeroshot/photo_filelist_zero.txt")
    old = tmp_path / "old"
    old.mkdir()
    manifest = json.loads((tiny_tree / "manifest.json").read_text())
    (old / "manifest.json").write_text(json.dumps({**manifest, "version": 1}))
    with pytest.raises(ValueError, match="version 1"):
        synthetic.photo_background_kinds(old, "zeroshot/photo_filelist_zero.txt")


@pytest.fixture(scope="module")
def calm_tree(tmp_path_factory):
    return generate_mini_benchmark(tmp_path_factory.mktemp("mini") / "calm", workers=1,
                                   **{**TINY, "photo_style": "calm"})


def test_calm_style_changes_only_the_photos(tiny_tree, calm_tree):
    busy, calm = _tree_digest(tiny_tree), _tree_digest(calm_tree)
    assert set(busy) == set(calm)
    for rel in busy:
        if rel.endswith(".png"):  # sketches do not depend on the photo style
            assert busy[rel] == calm[rel], rel
        elif rel.endswith(".jpg"):
            assert busy[rel] != calm[rel], rel
    manifest = json.loads((calm_tree / "manifest.json").read_text())
    assert manifest["params"]["photo_style"] == "calm"
    assert json.loads((tiny_tree / "manifest.json").read_text())["params"]["photo_style"] == "busy"


def test_calm_photos_have_quieter_backgrounds():
    def frame_std(img):  # the 4-pixel frame of a 64 px photo is mostly background
        a = np.asarray(img, np.float32)
        frame = np.concatenate([a[:4].reshape(-1, 3), a[-4:].reshape(-1, 3),
                                a[4:-4, :4].reshape(-1, 3), a[4:-4, -4:].reshape(-1, 3)])
        return frame.std(0).mean()

    busy, calm = [], []
    for k in range(30):
        name = class_name(k)
        busy.append(frame_std(render_photo(name, np.random.default_rng(k), 64)))
        calm.append(frame_std(render_photo(name, np.random.default_rng(k), 64, style="calm")))
    assert np.median(calm) < 0.6 * np.median(busy)


def test_unknown_photo_style_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="calm"):
        render_photo("star_legs", np.random.default_rng(0), 32, style="noisy")
    with pytest.raises(ValueError, match="photo_style"):
        generate_mini_benchmark(tmp_path / "m", workers=1, **{**TINY, "photo_style": "noisy"})
    assert not (tmp_path / "m").exists()


def test_ensure_regenerates_when_the_photo_style_changes(tmp_path):
    root = tmp_path / "mini"
    ensure_mini_benchmark(root, workers=1, **TINY)
    (root / "marker.txt").write_text("busy tree")
    ensure_mini_benchmark(root, workers=1, **{**TINY, "photo_style": "calm"})
    assert not (root / "marker.txt").exists()
    assert json.loads((root / "manifest.json").read_text())["params"]["photo_style"] == "calm"


def test_background_kinds_do_not_depend_on_the_photo_style(tiny_tree, calm_tree):
    # The kind is drawn before anything the style changes, so the background probe compares
    # like with like across the two styles.
    for rel in ("zeroshot/photo_filelist_zero.txt", "pretrain/photo_filelist.txt"):
        busy = synthetic.photo_background_kinds(tiny_tree, rel)
        calm = synthetic.photo_background_kinds(calm_tree, rel)
        assert np.array_equal(busy, calm)


def test_busy_photos_are_the_pixels_of_generator_version_2():
    # The SHA-256 of these raw pixels from render_photo at commit 3296b1b, before photo_style
    # existed: "busy" must keep rendering the trees of that generator, which configs without
    # data.generate.photo_style still ask for. (Raw pixels, not JPEG bytes.)
    digest = hashlib.sha256()
    for k in range(0, 150, 7):
        photo = render_photo(class_name(k), np.random.default_rng(k), 32, style="busy")
        digest.update(photo.tobytes())
    assert digest.hexdigest() == (
        "5d84d7650aca373c58abd5eb89c1f377be076b06aac4801fefb2793508428320"
    ), "the busy photos changed: bump GENERATOR_VERSION and regenerate what used them"


def test_ensure_with_default_arguments_reuses_the_mini_configs_tree(tmp_path):
    # data/README.md sends users to ensure_mini_benchmark("data/mini"): with its defaults it must
    # accept the tree the mini config generated there, not regenerate it with other photos.
    from amalib.config import load_config

    generate = load_config("mini")["data"]["generate"]
    defaults = synthetic.check_mini_benchmark_params()
    assert defaults.pop("workers") >= 1
    from_config = synthetic.check_mini_benchmark_params(**generate)
    from_config.pop("workers")
    assert defaults == from_config and defaults["photo_style"] == "calm"
    # The same at a tiny size: a tree from the config's parameters, then ensure_mini_benchmark
    # with only the sizes given (photo_style and the rest left to the defaults) reuses it.
    sizes = {k: v for k, v in TINY.items() if k not in ("seed", "photo_style")}
    root = generate_mini_benchmark(tmp_path / "mini", workers=1, **{**generate, **sizes})
    (root / "marker.txt").write_text("the config's tree")
    assert ensure_mini_benchmark(root, workers=1, **sizes) == root
    assert (root / "marker.txt").exists()  # reused, not regenerated
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["params"]["photo_style"] == generate["photo_style"] == "calm"


def test_check_mini_benchmark_params_names_the_bad_parameter():
    full = synthetic.check_mini_benchmark_params(seed="3", photo_style="calm")
    assert full["seed"] == 3 and full["photo_style"] == "calm" and full["n_seen"] == 30
    with pytest.raises(ValueError, match="seed must be an integer, got 'abc'"):
        synthetic.check_mini_benchmark_params(seed="abc")
    with pytest.raises(ValueError, match="image_size must be >= 16"):
        synthetic.check_mini_benchmark_params(image_size=8)
    with pytest.raises(ValueError, match="n_unseen"):
        synthetic.check_mini_benchmark_params(n_unseen=0)
    with pytest.raises(TypeError, match="unknown.*valid"):
        synthetic.check_mini_benchmark_params(n_sketches=3)


# --- issue 18.4: a tree is whole or regenerated; one generator per root at a time -----------
def test_tree_check_rejects_a_missing_or_truncated_file_and_ensure_repairs_it(tmp_path):
    from amalib.data.synthetic import check_mini_benchmark_tree

    root = ensure_mini_benchmark(tmp_path / "mini", workers=1, **TINY)
    assert check_mini_benchmark_tree(root) == []
    manifest = json.loads((root / "manifest.json").read_text())
    images = sorted(rel for rel in manifest["files"] if rel.endswith((".png", ".jpg")))
    assert len(images) == sum(c for rel, c in manifest["counts"].items())
    truncated, missing = root / images[0], root / images[-1]
    original = truncated.read_bytes()
    truncated.write_bytes(original[: len(original) // 2])
    missing.unlink()
    problems = check_mini_benchmark_tree(root)
    assert len(problems) == 2
    assert any(images[0] in p and "bytes" in p for p in problems)
    assert any(images[-1] in p and "missing" in p for p in problems)
    ensure_mini_benchmark(root, workers=1, **TINY)  # not reused: regenerated, whole again
    assert check_mini_benchmark_tree(root) == [] and truncated.read_bytes() == original


def test_tree_check_of_a_manifest_without_sizes_uses_the_lists(tmp_path):
    from amalib.data.synthetic import check_mini_benchmark_tree

    root = generate_mini_benchmark(tmp_path / "mini", workers=1, **TINY)
    manifest = json.loads((root / "manifest.json").read_text())
    del manifest["files"]  # as written before the sizes were recorded
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert check_mini_benchmark_tree(root) == []
    rel = _read_pairs(root / "zeroshot/sketch_filelist_train.txt")[0][0]
    (root / rel).write_bytes(b"")
    assert check_mini_benchmark_tree(root) == [f"{rel}: 0 bytes, the manifest says not empty"]


_GENERATE = (
    "import logging, sys\n"
    "logging.basicConfig(level=logging.INFO, stream=sys.stderr)\n"
    "from amalib.data.synthetic import ensure_mini_benchmark\n"
    "ensure_mini_benchmark({root!r}, workers={workers}, **{tiny!r})\n"
)


@pytest.mark.slow
def test_two_processes_generating_one_root_both_end_with_a_whole_tree(tmp_path):
    import subprocess
    import sys

    from amalib.data.synthetic import check_mini_benchmark_tree

    root = tmp_path / "mini"
    code = _GENERATE.format(root=str(root), workers=1, tiny=TINY)
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    logs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    assert check_mini_benchmark_tree(root) == []
    # The lock let exactly one of them render; the other reused its tree.
    assert sum("generated mini-benchmark" in log for log in logs) == 1, logs
    assert sum("reusing mini-benchmark" in log for log in logs) == 1, logs


# --- issue 18.5: the generator from places a multiprocessing pool cannot serve -------------
@pytest.mark.slow
@pytest.mark.parametrize("how", ["python -c", "stdin", "script without a main guard"])
def test_generator_works_from_python_c_stdin_and_an_unguarded_script(tmp_path, how):
    import subprocess
    import sys

    from amalib.data.synthetic import check_mini_benchmark_tree

    root = tmp_path / "mini"
    code = _GENERATE.format(root=str(root), workers=2, tiny=TINY)
    if how == "python -c":
        args, stdin = [sys.executable, "-c", code], None
    elif how == "stdin":
        args, stdin = [sys.executable, "-"], code
    else:
        script = tmp_path / "make_data.py"
        script.write_text(code)  # no `if __name__ == "__main__":`
        args, stdin = [sys.executable, str(script)], None
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "generated mini-benchmark" in done.stderr
    assert check_mini_benchmark_tree(root) == []
