"""Protocols beyond sketch→photo and ranking diagnostics: hand-worked cases and loop references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from amalib.metrics import average_precision, evaluate_retrieval
from amalib.protocols import (
    evaluate_generalized,
    evaluate_photo_to_sketch,
    hubness,
    k_occurrence_skewness,
    per_class_ap,
    seen_offset,
)


def at_angles(*degrees) -> np.ndarray:
    """Unit vectors in the plane at the given angles."""
    rad = np.radians(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1).astype(np.float32)


def loop_map(query, query_labels, gallery, gallery_labels, ap="interpolated") -> float:
    """Plain reference: per query, rank by cosine (ties by gallery order), AP of the list."""
    aps = []
    for q, y in zip(query, query_labels):
        scores = [float(np.dot(q, g) / np.linalg.norm(q) / np.linalg.norm(g)) for g in gallery]
        order = sorted(range(len(gallery)), key=lambda j: (-scores[j], j))
        relevance = [int(gallery_labels[j] == y) for j in order]
        if sum(relevance):
            aps.append(average_precision(relevance, ap=ap))
    return float(np.mean(aps))


# --------------------------------------------------------------------------- p2s


def test_photo_to_sketch_by_hand_is_not_symmetric():
    photos, photo_labels = at_angles(0, 90), [0, 1]
    sketches, sketch_labels = at_angles(53.13, 90), [0, 1]  # (0.6, 0.8) and (0, 1)
    # zs: sketch 0 scores photo 0 at 0.6 and photo 1 at 0.8 -> its photo at rank 2, AP 1/2;
    # sketch 1 finds photo 1 first, AP 1 -> mAP 0.75.
    zs = evaluate_retrieval(sketches, sketch_labels, photos, photo_labels)
    assert zs["mAP@all"] == pytest.approx(0.75)
    # p2s: photo 0 scores sketch 0 at 0.6, sketch 1 at 0 -> AP 1; photo 1 scores 0.8 vs 1 -> AP 1.
    p2s = evaluate_photo_to_sketch(sketches, sketch_labels, photos, photo_labels)
    assert p2s["mAP@all"] == pytest.approx(1.0)
    assert p2s["n_queries"] == 2 and p2s["n_gallery"] == 2


@pytest.mark.parametrize("ap", ["interpolated", "sklearn"])
def test_photo_to_sketch_equals_the_loop_with_photos_as_queries(ap):
    rng = np.random.default_rng(0)
    sketches, photos = rng.standard_normal((9, 5)), rng.standard_normal((12, 5))
    sketch_labels, photo_labels = rng.integers(0, 3, 9), rng.integers(0, 3, 12)
    result = evaluate_photo_to_sketch(sketches, sketch_labels, photos, photo_labels, ap=ap)
    assert result["mAP@all"] == pytest.approx(loop_map(photos, photo_labels, sketches,
                                                       sketch_labels, ap))


# --------------------------------------------------------------------------- gzs


def test_generalized_gallery_where_seen_photos_outrank_unseen_ones():
    query, query_labels = at_angles(0), [0]
    unseen, unseen_labels = at_angles(36.87, 90), [0, 1]  # cosines 0.8 and 0
    # Seen class 0 is another class than unseen class 0: its photo (cosine 0.9) is not relevant.
    seen, seen_labels = at_angles(25.84, 180), [0, 1]
    zs = evaluate_retrieval(query, query_labels, unseen, unseen_labels)
    gzs = evaluate_generalized(query, query_labels, unseen, unseen_labels, seen, seen_labels)
    # zs ranking: unseen 0 (relevant), unseen 1 -> AP 1, P@100 = 1/2 (a gallery of 2).
    assert zs["mAP@all"] == pytest.approx(1.0) and zs["P@100"] == pytest.approx(0.5)
    # gzs ranking: seen 0 (0.9), unseen 0 (0.8, relevant), unseen 1 (0), seen 1 (-1):
    # AP = 1/2; P@100 over the 4-photo gallery = 1/4; half of the list is seen photos.
    assert gzs["mAP@all"] == pytest.approx(0.5) and gzs["mAP@200"] == pytest.approx(0.5)
    assert gzs["P@100"] == pytest.approx(0.25)
    assert gzs["seen_share@100"] == pytest.approx(0.5)
    assert gzs["n_seen_gallery"] == 2 and gzs["n_unseen_gallery"] == 2 and gzs["n_gallery"] == 4


def test_generalized_equals_the_loop_over_the_joint_gallery():
    rng = np.random.default_rng(1)
    q, ql = rng.standard_normal((7, 6)), rng.integers(0, 3, 7)
    u, ul = rng.standard_normal((10, 6)), rng.integers(0, 3, 10)
    s, sl = rng.standard_normal((15, 6)), rng.integers(0, 4, 15)  # ids overlapping the unseen
    gzs = evaluate_generalized(q, ql, u, ul, s, sl)
    joint_labels = np.concatenate([ul, np.full(15, -1)])  # no seen photo is ever relevant
    assert gzs["mAP@all"] == pytest.approx(loop_map(q, ql, np.concatenate([u, s]), joint_labels))
    # seen share at K >= gallery size: the whole gallery is listed
    assert gzs["seen_share@200"] == pytest.approx(15 / 25)


def test_seen_share_counts_seen_photos_in_the_top_k():
    # Four queries at 0 degrees; 150 seen photos closer than all 100 unseen ones.
    query, labels = np.tile(at_angles(0), (4, 1)), [0, 0, 0, 0]
    unseen = at_angles(*np.linspace(50, 80, 100))
    seen = at_angles(*np.linspace(1, 40, 150))
    gzs = evaluate_generalized(query, labels, unseen, np.zeros(100), seen, np.zeros(150))
    assert gzs["seen_share@100"] == 1.0  # the top 100 are all seen
    assert gzs["seen_share@200"] == pytest.approx(150 / 200)  # then 50 unseen photos
    assert gzs["mAP@all"] < evaluate_retrieval(query, labels, unseen, np.zeros(100))["mAP@all"]


def test_seen_offset_moves_past_every_unseen_id():
    assert seen_offset(np.array([0, 4, 2]), torch.tensor([1, 6])) == 7
    assert seen_offset(np.array([], dtype=int)) == 0


# --------------------------------------------------------------------------- per-class AP


def test_per_class_ap_by_hand_hardest_first_and_excluded_queries_dropped():
    per_query = [0.5, 1.0, float("nan"), 0.2, 0.4]
    rows = per_class_ap(per_query, [0, 0, 1, 2, 2], ["cat", "dog", "eel"])
    assert [r["class"] for r in rows] == ["eel", "cat"]  # dog has no usable query
    assert rows[0]["AP"] == pytest.approx(0.3) and rows[0]["n_queries"] == 2
    assert rows[1]["AP"] == pytest.approx(0.75) and rows[1]["label"] == 0
    assert per_class_ap([0.1], [3])[0]["class"] == "3"


def test_per_class_ap_averages_to_the_loop_per_class():
    rng = np.random.default_rng(2)
    q, ql = rng.standard_normal((12, 4)), rng.integers(0, 3, 12)
    g, gl = rng.standard_normal((20, 4)), rng.integers(0, 3, 20)
    per_query = evaluate_retrieval(q, ql, g, gl, per_query=True)["per_query"]["mAP@all"]
    for row in per_class_ap(per_query, ql):
        mine = ql == row["label"]
        assert row["AP"] == pytest.approx(loop_map(q[mine], ql[mine], g, gl))
    with pytest.raises(ValueError, match="shape"):
        per_class_ap([0.1, 0.2], [0])


# --------------------------------------------------------------------------- hubness


QUERIES = at_angles(0, 10, 20, 30, 40)
# Gallery: 0: 90°, 1: 180°, 2: 20° (the hub, nearest to every query), 3: 300°, 4: 270°.
GALLERY = at_angles(90, 180, 20, 300, 270)


def test_planted_hub_by_hand():
    top1 = hubness(QUERIES, GALLERY, k=1)
    assert top1.counts.tolist() == [0, 0, 5, 0, 0]
    assert top1.hubs[0] == 2 and top1.top_hub_share == 1.0
    assert top1.never_retrieved == pytest.approx(4 / 5)
    # counts 0,0,5,0,0: mean 1, deviations -1,-1,4,-1,-1; m2 = 20/5 = 4, m3 = 60/5 = 12
    assert top1.skewness == pytest.approx(12 / 4**1.5)
    # k = 2, second places: 0° and 10° -> 300° (60°, 70° away); 20°, 30°, 40° -> 90°
    top2 = hubness(QUERIES, GALLERY, k=2)
    assert top2.counts.tolist() == [3, 0, 5, 2, 0]
    assert top2.hubs.tolist()[:3] == [2, 0, 3] and top2.never_retrieved == pytest.approx(2 / 5)
    summary = top2.summary(2)
    assert summary["hubs"] == [{"index": 2, "count": 5}, {"index": 0, "count": 3}]
    assert summary["n_gallery"] == 5 and summary["k"] == 2


def test_random_gallery_with_a_planted_hub():
    rng = np.random.default_rng(3)
    centre = rng.standard_normal(32)
    queries = (centre + rng.standard_normal((40, 32))).astype(np.float32)
    gallery = (centre + rng.standard_normal((60, 32))).astype(np.float32)
    plain = hubness(queries, gallery, k=5)
    gallery[17] = queries.mean(0) / np.linalg.norm(queries.mean(0))  # close to every query
    hubbed = hubness(queries, gallery, k=5)
    assert hubbed.hubs[0] == 17 and hubbed.counts[17] == 40 and hubbed.top_hub_share == 1.0
    assert hubbed.skewness > plain.skewness
    assert hubbed.counts.sum() == 40 * 5


def test_skewness_equals_the_moment_formula_written_out():
    counts = [0, 3, 1, 0, 9, 2, 0, 1]
    n = len(counts)
    mean = sum(counts) / n
    m2 = sum((c - mean) ** 2 for c in counts) / n
    m3 = sum((c - mean) ** 3 for c in counts) / n
    assert k_occurrence_skewness(counts) == pytest.approx(m3 / math.sqrt(m2) ** 3)
    assert k_occurrence_skewness([2, 2, 2]) == 0.0  # no spread, no skew


def test_k_longer_than_the_gallery_lists_the_whole_gallery():
    report = hubness(QUERIES, GALLERY[:3], k=10)
    assert report.k == 3 and report.counts.tolist() == [5, 5, 5]
