"""Chance levels of the retrieval metrics (amalib issue 16): the expected value of each metric
under a random ranking, checked against exhaustive enumeration on tiny galleries and against a
Monte-Carlo average of :func:`amalib.metrics.evaluate_scores` over random score matrices."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from amalib.metrics import average_precision, chance_levels, evaluate_scores


def _exhaustive(n_gallery: int, n_relevant: int, ap: str, top: int | None = None) -> float:
    """Mean AP over every placement of the relevant items (all rankings are equally likely)."""
    values = []
    for positions in itertools.combinations(range(n_gallery), n_relevant):
        relevance = np.zeros(n_gallery)
        relevance[list(positions)] = 1
        if top is None:
            values.append(average_precision(relevance, ap=ap))
        elif relevance[:top].sum() == 0:
            values.append(0.0)
        else:
            values.append(average_precision(relevance[:top], ap=ap,
                                            n_relevant=min(top, n_relevant)))
    return float(np.mean(values))


@pytest.mark.parametrize("n_gallery,n_relevant", [(2, 1), (5, 1), (6, 2), (8, 3), (9, 9), (10, 4)])
def test_plain_ap_formula_equals_exhaustive_enumeration(n_gallery, n_relevant):
    query = np.zeros(1, dtype=int)
    gallery = np.array([0] * n_relevant + [1] * (n_gallery - n_relevant))
    got = chance_levels(query, gallery, ap="sklearn")
    assert got["mAP@all"] == pytest.approx(_exhaustive(n_gallery, n_relevant, "sklearn"), abs=1e-12)
    assert got["P@100"] == pytest.approx(n_relevant / n_gallery)
    assert got["stderr"]["mAP@all"] == 0.0


def test_plain_ap_at_200_formula_equals_enumeration_of_a_short_list(monkeypatch):
    # The formula's top-K truncation, with K = 3 standing in for 200 on a gallery of 8.
    import amalib.metrics as metrics

    monkeypatch.setattr(metrics, "_TOP", 3)
    for n_relevant in (1, 2, 5):
        gallery = np.array([0] * n_relevant + [1] * (8 - n_relevant))
        got = chance_levels(np.zeros(1, dtype=int), gallery, ap="sklearn")
        assert got["mAP@200"] == pytest.approx(_exhaustive(8, n_relevant, "sklearn", top=3))


@pytest.mark.parametrize("n_gallery,n_relevant", [(6, 2), (8, 3), (10, 4)])
def test_interpolated_estimate_agrees_with_exhaustive_enumeration(n_gallery, n_relevant):
    gallery = np.array([0] * n_relevant + [1] * (n_gallery - n_relevant))
    got = chance_levels(np.zeros(1, dtype=int), gallery, n_samples=20000)
    exact = _exhaustive(n_gallery, n_relevant, "interpolated")
    assert abs(got["mAP@all"] - exact) < 4 * got["stderr"]["mAP@all"] + 1e-9
    # Interpolation never lowers AP, so its chance level is at least the plain one.
    assert got["mAP@all"] >= chance_levels(np.zeros(1, dtype=int), gallery, ap="sklearn")["mAP@all"]


@pytest.mark.parametrize("ap", ["interpolated", "sklearn"])
def test_chance_levels_equal_the_metrics_on_random_scores(ap):
    """Monte-Carlo: the metrics of many random score matrices average to the chance levels.

    Unequal classes and a gallery longer than 200, so that every metric has its own level and
    mAP@200's truncation matters.
    """
    rng = np.random.default_rng(1)
    gallery = np.repeat([0, 1, 2, 3], [30, 90, 150, 10])  # G = 280
    query_classes = np.array([0, 1, 1, 2, 3, 5])  # class 5 has no photo: excluded
    n_repeats = 600
    queries = np.tile(query_classes, n_repeats)
    scores = rng.random((len(queries), len(gallery))).astype(np.float32)
    measured = evaluate_scores(scores, queries, gallery, ap=ap, per_query=True)
    expected = chance_levels(query_classes, gallery, ap=ap, n_samples=4000)
    assert expected["n_queries"] == 5
    for key in ("mAP@all", "mAP@200", "P@100", "P@200"):
        values = measured["per_query"][key]
        values = values[~np.isnan(values)]
        mc_se = values.std(ddof=1) / np.sqrt(len(values))
        tolerance = 4 * np.hypot(mc_se, expected["stderr"][key])
        assert abs(values.mean() - expected[key]) < tolerance, (key, values.mean(), expected[key])


def test_each_metric_has_its_own_chance_level():
    # The mini-benchmark's test split: 10 classes, 30 sketches and 60 photos each.
    levels = chance_levels(np.repeat(np.arange(10), 30), np.repeat(np.arange(10), 60))
    assert levels["P@100"] == levels["P@200"] == pytest.approx(0.1)
    assert levels["mAP@all"] > 0.1  # early random hits count more
    assert levels["mAP@200"] < 0.06  # 60 relevant photos, most of them beyond rank 200
    assert levels == chance_levels(np.repeat(np.arange(10), 30), np.repeat(np.arange(10), 60))


def test_chance_levels_reject_empty_inputs():
    with pytest.raises(ValueError, match="empty"):
        chance_levels([0], [])
    with pytest.raises(ValueError, match="no query"):
        chance_levels([3], [0, 1])
    with pytest.raises(ValueError, match="ap must be"):
        chance_levels([0], [0], ap="other")
