"""The gallery index: exact and approximate search, a file format without pickle, clear errors."""

from __future__ import annotations

import json
import pickle
import zipfile

import numpy as np
import pytest

pytest.importorskip("faiss")

from amalib.metrics import top_k  # noqa: E402
from amalib.retrieval.index import GalleryIndex, GalleryIndexError, resolve_params  # noqa: E402


@pytest.fixture(scope="module")
def gallery():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 16))
    labels = rng.integers(0, 4, 300)
    features = (centres[labels] + 0.7 * rng.standard_normal((300, 16))).astype(np.float32)
    queries = (centres[rng.integers(0, 4, 20)] + 0.7 * rng.standard_normal((20, 16)))
    return features, labels, queries.astype(np.float32)


def build(gallery, kind="flat", **params):
    features, labels, _ = gallery
    return GalleryIndex.build(features, [f"c{y}/{i}.png" for i, y in enumerate(labels)],
                              labels=labels, class_names=["a", "b", "c", "d"], root="/photos",
                              kind=kind, params=params,
                              provenance={"checkpoint": {"path": "run/checkpoint.pth"}})


def test_flat_index_returns_the_exact_lists(gallery):
    features, _, queries = gallery
    index = build(gallery)
    idx, scores = index.search(queries, 10)
    # The index ranks by the unit rows it stores (float32, the same on every machine): exactly
    # top_k against those; against the raw features, within their float32 rounding.
    ref_idx, ref_scores = top_k(queries, index.features, 10)
    assert np.array_equal(idx, ref_idx) and np.array_equal(scores, ref_scores)
    raw_idx, raw_scores = top_k(queries, features, 10)
    assert np.array_equal(idx, raw_idx) and np.allclose(scores, raw_scores, atol=1e-6)
    assert index.dim == 16 and len(index) == 300 and index.kind == "flat"


@pytest.mark.parametrize("kind, params", [("hnsw", {"ef_search": 300}),
                                          ("ivf", {"nlist": 4, "nprobe": 4})])
def test_approximate_kinds_at_full_effort_find_the_exact_lists(gallery, kind, params):
    features, _, queries = gallery
    index = build(gallery, kind, **params)
    idx, _ = index.search(queries, 10)
    ref, _ = top_k(queries, features, 10)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(idx, ref)]) == 1.0
    assert index.params == resolve_params(kind, params, 300)


def test_save_load_round_trip_keeps_everything(gallery, tmp_path):
    for kind in ("flat", "hnsw", "ivf"):
        index = build(gallery, kind)
        path = index.save(tmp_path / f"g_{kind}.amaidx")
        loaded = GalleryIndex.load(path)
        assert loaded.paths == index.paths and loaded.class_names == index.class_names
        assert np.array_equal(loaded.labels, index.labels) and loaded.params == index.params
        assert loaded.provenance == index.provenance and loaded.root == "/photos"
        assert np.array_equal(loaded.features, index.features)
        assert np.array_equal(loaded.search(gallery[2], 5)[0], index.search(gallery[2], 5)[0])
        assert loaded.source == path and loaded.image_path(0).as_posix() == "/photos/c" \
            + index.paths[0][1:]
        assert loaded.label_name(0) == "abcd"[int(index.labels[0])]


def test_the_file_holds_no_pickle_and_says_what_it_is(gallery, tmp_path):
    path = build(gallery, "hnsw").save(tmp_path / "g.amaidx")
    with np.load(path, allow_pickle=False) as archive:  # would raise on an object array
        assert set(archive.files) == {"meta", "features", "labels", "faiss"}
        assert all(archive[name].dtype != object for name in archive.files)
        meta = json.loads(archive["meta"].tobytes())
    assert meta["format"] == "amalib-gallery-index" and meta["dim"] == 16 and meta["n"] == 300
    assert meta["kind"] == "hnsw" and meta["params"]["M"] == 32
    # The exact kind stores no faiss bytes: it is rebuilt from the features on loading.
    with np.load(build(gallery).save(tmp_path / "f.amaidx")) as archive:
        assert "faiss" not in archive.files


def test_unlabelled_gallery(gallery):
    index = GalleryIndex.build(gallery[0], [f"{i}.png" for i in range(300)])
    assert index.labels is None and index.label_name(3) is None
    assert index.image_path(3).as_posix() == "3.png"


def test_missing_file_says_how_to_build_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="amalib index build"):
        GalleryIndex.load(tmp_path / "none.amaidx")


def test_a_pickle_or_other_file_is_refused_not_loaded(tmp_path):
    evil = tmp_path / "evil.amaidx"
    evil.write_bytes(pickle.dumps({"format": "amalib-gallery-index"}))
    with pytest.raises(GalleryIndexError, match="not an amalib gallery index.*evil.amaidx|"
                                                "evil.amaidx is not an amalib gallery index"):
        GalleryIndex.load(evil)
    other = tmp_path / "other.npz"
    np.savez(other, meta=np.frombuffer(b'{"format": "x"}', np.uint8))
    with pytest.raises(GalleryIndexError, match="format 'x'"):
        GalleryIndex.load(other)


def test_damaged_file_names_the_problem(gallery, tmp_path):
    path = build(gallery, "hnsw").save(tmp_path / "g.amaidx")
    with np.load(path) as archive:
        parts = {name: archive[name] for name in archive.files}
    meta = json.loads(parts["meta"].tobytes())
    meta["n"] = 299
    parts["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    broken = tmp_path / "broken.amaidx"
    with broken.open("wb") as fh:
        np.savez(fh, **parts)
    with pytest.raises(GalleryIndexError, match="broken.amaidx is damaged.*expected \\(299, 16\\)"):
        GalleryIndex.load(broken)
    newer = {**json.loads(parts["meta"].tobytes()), "n": 300, "version": 99}
    parts["meta"] = np.frombuffer(json.dumps(newer).encode(), np.uint8)
    with broken.open("wb") as fh:
        np.savez(fh, **parts)
    with pytest.raises(GalleryIndexError, match="version 99.*upgrade"):
        GalleryIndex.load(broken)
    assert zipfile.is_zipfile(path)


def test_queries_of_another_dimension_are_refused(gallery, tmp_path):
    loaded = GalleryIndex.load(build(gallery).save(tmp_path / "g.amaidx"))
    with pytest.raises(GalleryIndexError, match="queries are 8-d but the index holds 16-d.*g.amaidx"):
        loaded.search(np.ones((1, 8)), 3)


def test_unknown_kind_and_parameters(gallery):
    with pytest.raises(GalleryIndexError, match="unknown index kind 'lsh'"):
        build(gallery, "lsh")
    with pytest.raises(GalleryIndexError, match="efSearch.*valid: M, ef_construction, ef_search"):
        build(gallery, "hnsw", efSearch=10)
    with pytest.raises(GalleryIndexError, match="positive integer"):
        build(gallery, "ivf", nprobe=0)
    with pytest.raises(GalleryIndexError, match="more lists"):
        build(gallery, "ivf", nlist=301)
    assert resolve_params("ivf", None, 54151)["nlist"] == round(4 * 54151**0.5)
    assert resolve_params("ivf", None, 100)["nlist"] == 2  # at least 39 points per list
    with pytest.raises(ValueError, match="300 feature rows but 2 paths"):
        GalleryIndex.build(gallery[0], ["a", "b"])


def _tie_heavy_gallery():
    """Integer-valued features with duplicated rows: many exactly tied scores."""
    rng = np.random.default_rng(4)
    features = rng.integers(-1, 2, (240, 8)).astype(np.float32)
    features[np.abs(features).sum(1) == 0, 0] = 1
    features[1::9] = features[0]
    queries = rng.integers(-2, 3, (15, 8)).astype(np.float32) + 0.5
    return features, queries


def test_every_kind_orders_tied_items_by_gallery_index_with_the_metrics_scores():
    from amalib.metrics import cosine_scores, unit_features

    features, queries = _tie_heavy_gallery()
    paths = [f"{i}.png" for i in range(len(features))]
    flat = GalleryIndex.build(features, paths)
    assert np.array_equal(flat.features, unit_features(features).numpy())
    exact = cosine_scores(queries, flat.features).numpy()
    idx, scores = flat.search(queries, 30)
    for i in range(len(queries)):
        order = sorted(range(len(features)), key=lambda j: (-exact[i, j], j))[:30]
        assert idx[i].tolist() == order
        assert scores[i].tolist() == exact[i, order].tolist()
    for kind, params in (("hnsw", {"ef_search": 400}), ("ivf", {"nlist": 4, "nprobe": 4})):
        a_idx, a_scores = GalleryIndex.build(features, paths, kind=kind, params=params).search(
            queries, 30)
        for i in range(len(queries)):  # faiss' candidates, in amalib's order and scores
            assert a_scores[i].tolist() == exact[i, a_idx[i]].tolist()
            keys = [(-s, j) for s, j in zip(a_scores[i].tolist(), a_idx[i].tolist())]
            assert keys == sorted(keys)


def test_rescored_candidates_put_missing_ones_last():
    from amalib.metrics import rescore_candidates

    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    idx, scores = rescore_candidates(np.array([[1.0, 0.0]]), gallery, [[2, -1, 1, 0]])
    assert idx.tolist() == [[0, 2, 1, -1]]  # the tie (0 and 2) by gallery index
    assert scores.tolist() == [[1.0, 1.0, 0.0, -np.inf]]
