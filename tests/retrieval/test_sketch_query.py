"""One sketch against a gallery: cosine top-k against a loop, hits, self-retrieval, errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from amalib.data.strokes import render_strokes
from amalib.data.transforms import eval_transform
from amalib.metrics import top_k, unit_features
from amalib.retrieval.index import GalleryIndex, GalleryIndexError
from amalib.retrieval.sketch_query import (
    encode_image,
    query_image,
    query_strokes,
    sketch_query_settings,
)


def reference_top_k(query, gallery, k):
    """Plain loops: cosine of every pair, then the k best, ties by the lower gallery index."""
    out_idx, out_scores = [], []
    for q in query:
        scores = []
        for j, g in enumerate(gallery):
            cos = float(np.dot(q, g) / (np.linalg.norm(q) * np.linalg.norm(g)))
            scores.append((-cos, j))
        best = sorted(scores)[:k]
        out_idx.append([j for _, j in best])
        out_scores.append([-s for s, _ in best])
    return np.array(out_idx), np.array(out_scores)


@pytest.mark.parametrize("n_query, n_gallery, dim, k", [(1, 5, 3, 2), (4, 30, 8, 7),
                                                         (3, 6, 4, 10), (2, 50, 16, 50)])
def test_top_k_matches_a_loop(n_query, n_gallery, dim, k):
    rng = np.random.default_rng(n_gallery)
    q = rng.normal(size=(n_query, dim))
    g = rng.normal(size=(n_gallery, dim)) * rng.uniform(0.5, 3, size=(n_gallery, 1))
    idx, scores = top_k(q, g, k)
    ref_idx, ref_scores = reference_top_k(q, g, k)
    assert idx.shape == (n_query, min(k, n_gallery))
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
    # The gallery the sketch pad searches: top_k against the unit rows it stores, bit for bit.
    gallery = GalleryIndex.build(g, [f"{j}.png" for j in range(n_gallery)])
    g_idx, g_scores = gallery.search(q, k)
    ref_idx, ref_scores = top_k(q, gallery.features, k)
    assert np.array_equal(g_idx, ref_idx) and np.array_equal(g_scores, ref_scores)


def test_ties_go_to_the_lower_index():
    g = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    gallery = GalleryIndex.build(g, [f"{j}.png" for j in range(len(g))])
    idx, scores = gallery.search(np.array([1.0, 0.0]), 4)  # a 1-D query is one query
    np.testing.assert_array_equal(idx, [[1, 2, 3, 0]])
    np.testing.assert_allclose(scores, [[1, 1, 1, 0]], atol=1e-7)


def test_top_k_refuses_bad_input():
    with pytest.raises(ValueError, match="k must be"):
        top_k(np.ones((1, 2)), np.ones((3, 2)), 0)
    with pytest.raises(ValueError, match="k must be"):
        GalleryIndex.build(np.ones((3, 2)), ["a", "b", "c"]).search(np.ones((1, 2)), 0)
    with pytest.raises(GalleryIndexError, match="queries are 2-d but the index holds 4-d.*"
                                                "embed the queries with the model"):
        GalleryIndex.build(np.ones((3, 4)), ["a", "b", "c"]).search(np.ones((1, 2)), 1)


def test_gallery_checks_and_normalises():
    g = GalleryIndex.build(np.array([[3.0, 4.0], [0.0, 2.0]]), ["a.jpg", "b.jpg"],
                           labels=[1, 0], class_names=["cat", "dog"])
    torch.testing.assert_close(torch.as_tensor(g.features), torch.tensor([[0.6, 0.8], [0.0, 1.0]]))
    assert len(g) == 2 and g.labels.dtype == np.int64
    assert g.label_of("dog") == 1 and g.label_of(0) == 0 and g.label_of(None) is None
    with pytest.raises(ValueError, match="unknown class 'cow'.*cat, dog"):
        g.label_of("cow")
    with pytest.raises(ValueError, match="2 feature rows but 3 paths"):
        GalleryIndex.build(np.ones((2, 2)), ["a", "b", "c"])
    with pytest.raises(ValueError, match="2 feature rows but 2 paths and 1 labels"):
        GalleryIndex.build(np.ones((2, 2)), ["a", "b"], labels=[0])
    with pytest.raises(ValueError, match="the gallery is empty"):
        GalleryIndex.build(np.ones((0, 2)), [])


def test_one_class_lookup_between_ids_and_names():
    named = GalleryIndex.build(np.eye(3), ["a", "b", "c"], labels=[0, 1, 1],
                               class_names=["cat", "dog"])
    assert named.n_classes == 2 and named.class_name(1) == "dog" and named.class_name(None) is None
    assert [named.label_name(i) for i in range(3)] == ["cat", "dog", "dog"]
    ids = GalleryIndex.build(np.eye(3), ["a", "b", "c"], labels=[0, 2, 2])
    assert ids.n_classes == 3 and ids.class_name(2) == "2" and ids.label_of(2) == 2
    with pytest.raises(ValueError, match=r"unknown class 'cat' \(the gallery has no class names; "
                                         r"ids 0-2\)"):
        ids.label_of("cat")
    unlabelled = GalleryIndex.build(np.eye(3), ["a", "b", "c"])
    assert unlabelled.n_classes == 0 and unlabelled.label_name(0) is None


def test_the_exact_gallery_needs_no_faiss(monkeypatch, tmp_path):
    """Build, search, save and load without faiss (it is an optional dependency)."""
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` raises ImportError
    rng = np.random.default_rng(1)
    features, queries = rng.normal(size=(20, 6)).astype(np.float32), rng.normal(size=(3, 6))
    gallery = GalleryIndex.build(features, [f"{j}.png" for j in range(20)], labels=np.arange(20))
    idx, scores = gallery.search(queries, 5)
    ref_idx, ref_scores = top_k(queries, unit_features(features), 5)
    assert np.array_equal(idx, ref_idx) and np.array_equal(scores, ref_scores)
    loaded = GalleryIndex.load(gallery.save(tmp_path / "g.amaidx"))
    assert len(loaded) == 20 and loaded.dim == 6
    l_idx, l_scores = loaded.search(queries, 5)
    assert np.array_equal(l_idx, idx) and np.array_equal(l_scores, scores)


class PixelModel(nn.Module):
    """A fixed random projection of the pixels: different images, different features."""

    def __init__(self, side=16, dim=12):
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(3 * side * side, dim)

    def forward(self, x):
        return self.proj(x.flatten(1))


@pytest.fixture
def photo_gallery(tmp_path):
    """Eight 'photos': shapes of two classes drawn as images, and their features."""
    model, tf = PixelModel(), eval_transform(16, 16)
    paths, labels = [], []
    rng = np.random.default_rng(0)
    for i in range(8):
        label = i % 2
        pixels = rng.integers(0, 255, size=(20, 20, 3), dtype=np.uint8)
        pixels[5:15, 5:15] = (200, 30, 30) if label == 0 else (30, 30, 200)
        path = tmp_path / f"photo_{i}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
        labels.append(label)
    feats = torch.stack([encode_image(model, Image.open(p), tf) for p in paths])
    return model, tf, GalleryIndex.build(feats, paths, labels=labels, class_names=["red", "blue"])


def test_a_gallery_image_finds_itself_first(photo_gallery):
    model, tf, gallery = photo_gallery
    result = query_image(model, Image.open(gallery.paths[5]), gallery, transform=tf, k=3,
                         query_label="blue")
    assert result.indices[0] == 5 and result.scores[0] == pytest.approx(1.0, abs=1e-5)
    ref_idx, ref_scores = reference_top_k(
        encode_image(model, Image.open(gallery.paths[5]), tf)[None].numpy(),
        gallery.features, 3)
    np.testing.assert_array_equal(result.indices, ref_idx[0])
    np.testing.assert_allclose(result.scores, ref_scores[0], atol=1e-5)
    assert result.paths == tuple(gallery.paths[i] for i in result.indices)
    np.testing.assert_array_equal(result.labels, gallery.labels[result.indices])
    np.testing.assert_array_equal(result.hits, gallery.labels[result.indices] == 1)
    assert result.query_label == 1 and len(result) == 3


def test_hits_only_when_the_class_is_known(photo_gallery):
    model, tf, gallery = photo_gallery
    result = query_image(model, Image.open(gallery.paths[0]), gallery, transform=tf, k=4)
    assert result.hits is None and result.query_label is None
    unlabelled = GalleryIndex.build(gallery.features, gallery.paths)
    result = query_image(model, Image.open(gallery.paths[0]), unlabelled, transform=tf, k=4,
                         query_label=0)
    assert result.hits is None and result.labels is None


def test_describe_lists_file_names_scores_and_hits(photo_gallery):
    model, tf, gallery = photo_gallery
    result = query_image(model, Image.open(gallery.paths[2]), gallery, transform=tf, k=3,
                         query_label=0)
    text = result.describe()
    lines = text.splitlines()
    assert len(lines) == 4 and lines[0].startswith(" 1. photo_2.png")
    assert "red" in lines[0] and "cosine 1.000  hit" in lines[0]
    assert str(gallery.paths[0].parent) not in text  # no machine paths
    assert lines[-1] == f"hits: {int(result.hits.sum())}/3 photos of red"


def test_query_strokes_is_render_then_query(photo_gallery):
    model, tf, gallery = photo_gallery
    strokes = [[(10, 10), (200, 10), (200, 200)], [(50, 120)]]
    result = query_strokes(model, strokes, gallery, transform=tf, k=5, image_size=20,
                           canvas_size=256)
    image = render_strokes(strokes, image_size=20, canvas_size=256)
    expected = query_image(model, image, gallery, transform=tf, k=5)
    np.testing.assert_array_equal(result.indices, expected.indices)
    np.testing.assert_allclose(result.scores, expected.scores)
    assert result.image.size == (20, 20)
    with pytest.raises(ValueError, match="empty drawing"):
        query_strokes(model, [], gallery, transform=tf)


def test_encode_image_keeps_the_training_mode(photo_gallery):
    model, tf, gallery = photo_gallery
    model.train()
    feature = encode_image(model, Image.open(gallery.paths[0]), tf)
    assert model.training and feature.shape == (12,)
    assert float(feature.norm()) == pytest.approx(1.0, abs=1e-6)


def test_settings_of_the_mini_config():
    from amalib.config import load_config

    cfg = load_config("mini")
    settings = sketch_query_settings(cfg)
    assert settings["image_size"] == 64  # the generated sketches' size
    assert settings["transform"](Image.new("RGB", (64, 64), "white")).shape == (3, 48, 48)
    del cfg["data"]["generate"]
    assert sketch_query_settings(cfg)["image_size"] == 256  # a real benchmark's sketches
