"""Retrieval metrics: hand-worked rankings, a plain per-query reference, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import amalib.metrics as metrics_module
from amalib.metrics import average_precision, evaluate_retrieval, evaluate_scores, top_k

# --------------------------------------------------------------------------- reference


def voc_ap(recall: list[float], precision: list[float]) -> float:
    """The VOC 2010+ AP, written the way the SBIR evaluation scripts write it."""
    mrec = [0.0, *recall, 1.0]
    mpre = [0.0, *precision, 0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1)
               if mrec[i + 1] != mrec[i])


def reference_metrics(scores: np.ndarray, qlab: np.ndarray, glab: np.ndarray, ap: str) -> dict:
    """One query at a time: stable sort, counts in a Python loop, precision envelope."""
    per = {k: [] for k in ("mAP@all", "mAP@200", "P@100", "P@200")}
    for i in range(len(qlab)):
        order = sorted(range(len(glab)), key=lambda j: (-scores[i, j], j))
        rel = [int(glab[j] == qlab[i]) for j in order]
        n_pos = sum(rel)
        if n_pos == 0:
            continue
        for key, top, denom in (("mAP@all", len(rel), n_pos),
                                ("mAP@200", min(200, len(rel)), min(200, n_pos))):
            hits, recall, precision, ap_sum = 0, [], [], 0.0
            for k in range(top):
                hits += rel[k]
                recall.append(hits / denom)
                precision.append(hits / (k + 1))
                if rel[k]:
                    ap_sum += hits / (k + 1)
            per[key].append(voc_ap(recall, precision) if ap == "interpolated" else ap_sum / denom)
        for k in (100, 200):
            kk = min(k, len(rel))
            per[f"P@{k}"].append(sum(rel[:kk]) / kk)
    return {key: float(np.mean(v)) for key, v in per.items()}


@pytest.fixture(params=["numpy-rows", "torch-vectorised"])
def ranking_path(request, monkeypatch):
    """Run a test through both rank implementations: numpy per row (CPU) and torch (CUDA)."""
    monkeypatch.setattr(metrics_module, "_CPU_PATH", request.param == "numpy-rows")
    return request.param


# --------------------------------------------------------------------------- hand-worked


@pytest.mark.parametrize(
    "relevance, interpolated, plain",
    [
        ([1, 0, 1], 5 / 6, 5 / 6),  # precisions 1, 1/2, 2/3 at the hits -> (1 + 2/3) / 2
        ([0, 1, 0, 1], 1 / 2, 1 / 2),  # (1/2 + 1/2) / 2
        # precisions at hits: 1, 2/4, 3/5; the envelope lifts 2/4 to 3/5
        ([1, 0, 0, 1, 1], (1 + 0.6 + 0.6) / 3, (1 + 0.5 + 0.6) / 3),
        ([0, 0, 1], 1 / 3, 1 / 3),
    ],
)
def test_average_precision_hand_worked(relevance, interpolated, plain):
    assert average_precision(relevance, ap="interpolated") == pytest.approx(interpolated)
    assert average_precision(relevance, ap="sklearn") == pytest.approx(plain)


def test_three_item_gallery_by_hand():
    # One query of class 0; gallery scores rank items as [g1 (cls 0), g0 (cls 1), g2 (cls 0)].
    scores = np.array([[0.5, 0.9, 0.1]])
    result = evaluate_scores(scores, [0], [1, 0, 0])
    assert result["mAP@all"] == pytest.approx(5 / 6)
    assert result["mAP@200"] == pytest.approx(5 / 6)
    # Top-100 list is the whole 3-item gallery: 2 hits out of 3 items.
    assert result["P@100"] == pytest.approx(2 / 3)
    assert result["P@200"] == pytest.approx(2 / 3)
    assert result["n_queries"] == 1 and result["n_excluded"] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_signed_zeros_tie(dtype, ranking_path):
    # -0.0 == +0.0, so gallery order decides: relevance [1, 0, 1] whichever zero each item has.
    scores = np.array([[-0.0, 0.0, -0.0]], dtype=dtype)
    result = evaluate_scores(scores, [1], [1, 0, 1], ap="sklearn")
    assert result["mAP@all"] == pytest.approx(5 / 6)


def test_ties_are_broken_by_gallery_order(ranking_path):
    # All scores equal: the ranking is the gallery order, relevance [0, 1, 1].
    result = evaluate_scores(np.zeros((1, 3)), [7], [3, 7, 7], ap="sklearn")
    assert result["mAP@all"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    # Reversing the gallery puts the relevant items first.
    result = evaluate_scores(np.zeros((1, 3)), [7], [7, 7, 3], ap="sklearn")
    assert result["mAP@all"] == pytest.approx(1.0)


def test_map200_recall_normalised_by_min_200_positives():
    # 300 relevant items ranked after 100 irrelevant ones: the top 200 holds 100 hits.
    labels = np.array([1] * 100 + [0] * 300)
    scores = -np.arange(400, dtype=np.float64)[None]  # gallery order is the ranking
    result = evaluate_scores(scores, [0], labels, ap="sklearn")
    expected = sum((h + 1) / (100 + h + 1) for h in range(100)) / 200
    assert result["mAP@200"] == pytest.approx(expected)
    assert result["P@100"] == 0.0
    assert result["P@200"] == pytest.approx(0.5)


def test_query_without_relevant_gallery_item_is_excluded():
    scores = np.array([[0.9, 0.1], [0.3, 0.4]])
    result = evaluate_scores(scores, [0, 5], [0, 1])
    assert result["n_queries"] == 2
    assert result["n_used"] == 1 and result["n_excluded"] == 1
    assert result["mAP@all"] == pytest.approx(1.0)
    assert all(math.isfinite(result[k]) for k in ("mAP@all", "mAP@200", "P@100", "P@200"))


def test_all_queries_excluded_gives_zeros_not_nan():
    result = evaluate_scores(np.ones((2, 2)), [3, 4], [0, 1])
    assert result["n_used"] == 0 and result["n_excluded"] == 2
    assert result["mAP@all"] == 0.0 and not math.isnan(result["P@100"])


# --------------------------------------------------------------------------- reference grid


@pytest.mark.parametrize("dtype", [np.float32, np.float64])  # packed-key path and fallback
@pytest.mark.parametrize("ap", ["interpolated", "sklearn"])
@pytest.mark.parametrize("chunk_size", [1, 7, 64, None])
@pytest.mark.parametrize("n_gallery", [150, 260])
def test_fast_equals_reference_with_ties(ap, chunk_size, n_gallery, dtype, ranking_path):
    rng = np.random.default_rng(n_gallery + (chunk_size or 0))
    n_query, n_classes = 23, 6
    # Scores on a coarse grid of negative and positive values so that many ties occur.
    scores = (rng.integers(0, 12, size=(n_query, n_gallery)).astype(dtype) - 5) / 11
    qlab = rng.integers(0, n_classes + 1, size=n_query)  # class 6 has no gallery item
    glab = rng.integers(0, n_classes, size=n_gallery)
    expected = reference_metrics(scores, qlab, glab, ap)
    result = evaluate_scores(scores, qlab, glab, ap=ap, chunk_size=chunk_size)
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-6), key
    assert result["n_used"] + result["n_excluded"] == n_query
    assert result["ap"] == ap


def _forbid_full_ranking(monkeypatch):
    """Make the exact tie path raise: a test using this exercises only the binary-search path."""
    def forbidden(*args):
        raise AssertionError("the full ranking was used for a row without ties")
    monkeypatch.setattr(metrics_module, "_sorted_relevance", forbidden)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ap", ["interpolated", "sklearn"])
@pytest.mark.parametrize("chunk_size", [1, 5, None])
def test_fast_equals_reference_without_ties(ap, chunk_size, dtype, monkeypatch, ranking_path):
    rng = np.random.default_rng(3 + (chunk_size or 0))
    n_query, n_gallery, n_classes = 17, 230, 5
    scores = rng.normal(size=(n_query, n_gallery)).astype(dtype)
    qlab = rng.integers(0, n_classes, size=n_query)
    glab = rng.integers(0, n_classes, size=n_gallery)
    expected = reference_metrics(scores, qlab, glab, ap)
    _forbid_full_ranking(monkeypatch)
    result = evaluate_scores(scores, qlab, glab, ap=ap, chunk_size=chunk_size)
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-9), key


def test_ties_among_irrelevant_items_need_no_full_ranking(monkeypatch, ranking_path):
    # Irrelevant items share one score; relevant items have distinct ones: ranks stay exact.
    glab = np.array([1, 0, 0, 1, 0, 0, 1])
    scores = np.array([[0.9, 0.5, 0.5, 0.1, 0.5, 0.5, 0.7]], dtype=np.float32)
    expected = reference_metrics(scores, np.array([1]), glab, "interpolated")
    _forbid_full_ranking(monkeypatch)
    result = evaluate_scores(scores, [1], glab)
    assert result["mAP@all"] == pytest.approx(expected["mAP@all"])
    # Relevant at ranks 1, 2 and 7: AP = (1 + 1 + 3/7) / 3.
    assert result["mAP@all"] == pytest.approx((1 + 1 + 3 / 7) / 3)


TIED_GALLERY = np.array([0, 1, 0, 1, 0])
TIED_SCORES = np.array([
    [0.9, 0.8, 0.7, 0.6, 0.5],   # no ties
    [0.4, 0.8, 0.8, 0.1, 0.2],   # relevant item 1 tied with irrelevant item 2
    [0.3, 0.2, 0.3, 0.9, 0.1],   # relevant items 0 and 2 tied with each other
    [0.5, 0.5, 0.5, 0.5, 0.2],   # relevant items 0 and 2 tied with irrelevant 1 and 3
], dtype=np.float32)
TIED_QUERIES = np.array([0, 1, 0, 0])


def test_tied_relevant_items_are_counted_exactly_without_full_ranking(monkeypatch, ranking_path):
    _forbid_full_ranking(monkeypatch)
    result = evaluate_scores(TIED_SCORES, TIED_QUERIES, TIED_GALLERY, per_query=True)
    expected = reference_metrics(TIED_SCORES, TIED_QUERIES, TIED_GALLERY, "interpolated")
    assert result["mAP@all"] == pytest.approx(expected["mAP@all"])
    per = result["per_query"]["mAP@all"]
    # Row 1: relevant items 1 (wins the tie by gallery order: rank 1) and 3 (rank 5).
    assert per[1] == pytest.approx((1 + 2 / 5) / 2)
    # Row 3: ranking 0, 1, 2, 3 (one tie, gallery order), 4: hits at ranks 1, 3, 5.
    assert per[3] == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)


def test_rows_with_many_tied_relevant_items_take_the_full_ranking(monkeypatch, ranking_path):
    monkeypatch.setattr(metrics_module, "_TIED_PER_ROW_LIMIT", 1)
    seen = []
    original = metrics_module._sorted_relevance

    def spy(scores, query_labels, gallery_labels):
        seen.append(scores.clone())
        return original(scores, query_labels, gallery_labels)

    monkeypatch.setattr(metrics_module, "_sorted_relevance", spy)
    result = evaluate_scores(TIED_SCORES, TIED_QUERIES, TIED_GALLERY)
    # Rows 2 and 3 have two tied relevant items each (> 1); row 1 has one.
    assert len(seen) == 1 and torch.equal(seen[0], torch.from_numpy(TIED_SCORES[2:]))
    expected = reference_metrics(TIED_SCORES, TIED_QUERIES, TIED_GALLERY, "interpolated")
    for key, value in expected.items():
        assert result[key] == pytest.approx(value), key


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_scores_rank_like_their_float32_values(dtype):
    rng = np.random.default_rng(5)
    scores = torch.from_numpy(rng.normal(size=(9, 120)).astype(np.float32)).to(dtype)
    qlab, glab = rng.integers(0, 4, 9), rng.integers(0, 4, 120)
    half = evaluate_scores(scores, qlab, glab)
    full = evaluate_scores(scores.float(), qlab, glab)
    for key in ("mAP@all", "mAP@200", "P@100", "P@200"):
        assert half[key] == full[key]


@pytest.mark.parametrize("ap", ["interpolated", "sklearn"])
def test_features_path_equals_scores_path(ap):
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(31, 16)), rng.normal(size=(240, 16))
    qlab, glab = rng.integers(0, 5, 31), rng.integers(0, 5, 240)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    expected = reference_metrics(qn @ gn.T, qlab, glab, ap)
    for qf, gf in ((q, g), (torch.from_numpy(q).float(), torch.from_numpy(g).float())):
        result = evaluate_retrieval(qf, qlab, gf, glab, ap=ap, chunk_size=8)
        for key, value in expected.items():
            assert result[key] == pytest.approx(value, abs=1e-5), key


def test_sklearn_convention_matches_scikit_learn_without_ties():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(12, 90))
    qlab, glab = rng.integers(0, 4, 12), rng.integers(0, 4, 90)
    result = evaluate_scores(scores, qlab, glab, ap="sklearn", per_query=True)
    for i in range(12):
        expected = sklearn_metrics.average_precision_score(glab == qlab[i], scores[i])
        assert result["per_query"]["mAP@all"][i] == pytest.approx(expected)


def test_per_query_marks_excluded_queries_nan():
    result = evaluate_scores(np.eye(3), [0, 1, 9], [0, 1, 2], per_query=True)
    values = result["per_query"]["mAP@all"]
    assert values[:2].tolist() == [1.0, 1.0] and math.isnan(values[2])


def test_precision_at_k_counts():
    # 250-item gallery, relevant items at every other rank: P@100 = 50/100, P@200 = 100/200.
    glab = np.array([1, 0] * 125)
    scores = -np.arange(250, dtype=np.float64)[None]
    result = evaluate_scores(scores, [1], glab)
    assert result["P@100"] == pytest.approx(0.5)
    assert result["P@200"] == pytest.approx(0.5)


# --------------------------------------------------------------------------- errors


def test_bad_inputs_give_clear_errors():
    q, g = np.ones((3, 4)), np.ones((5, 4))
    with pytest.raises(ValueError, match="feature dimensions differ"):
        evaluate_retrieval(q, [0, 0, 0], np.ones((5, 3)), [0] * 5)
    with pytest.raises(ValueError, match="query_labels has 2 entries"):
        evaluate_retrieval(q, [0, 0], g, [0] * 5)
    with pytest.raises(ValueError, match="gallery_labels has 4 entries"):
        evaluate_retrieval(q, [0] * 3, g, [0] * 4)
    with pytest.raises(ValueError, match="gallery is empty"):
        evaluate_retrieval(q, [0] * 3, np.ones((0, 4)), [])
    bad = q.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        evaluate_retrieval(bad, [0] * 3, g, [0] * 5)
    with pytest.raises(ValueError, match="non-finite"):
        evaluate_scores(np.array([[np.inf]]), [0], [0])
    with pytest.raises(ValueError, match="ap must be"):
        evaluate_scores(np.ones((1, 1)), [0], [0], ap="voc")
    with pytest.raises(ValueError, match="integer class ids"):
        evaluate_scores(np.ones((1, 1)), [0.5], [0])


def test_importing_metrics_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, amalib.metrics; "
        "heavy = [m for m in ('umap', 'faiss', 'matplotlib', 'timm') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _sort_blocks_in_child(rows: np.ndarray) -> np.ndarray:
    out = rows.copy()

    def work(block):
        out[block].sort(axis=1)

    metrics_module._over_row_blocks(work, len(out), 1 << 20)  # large enough to use the threads
    return out


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_row_thread_pool_is_rebuilt_in_a_forked_child():
    # The parent's sorting threads do not survive fork; a child must build its own pool instead
    # of waiting forever on the inherited one. (Only numpy work here: torch's own intra-op
    # threads are not fork-safe either, which is why DataLoader workers run single-threaded.)
    import multiprocessing as mp

    rows = np.random.default_rng(0).random((6, 50), dtype=np.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the threaded path needs more than one thread
    try:
        expected = _sort_blocks_in_child(rows)  # the parent creates the pool
        assert metrics_module._sort_pool is not None
        with mp.get_context("fork").Pool(1) as pool:
            got = pool.apply_async(_sort_blocks_in_child, (rows,)).get(timeout=60)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, np.sort(rows, axis=1))


# --------------------------------------------------------------------------- top_k


def test_top_k_breaks_ties_by_gallery_order_like_the_metrics():
    gallery = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.6, 0.8], [1.0, 0.0]])
    idx, scores = top_k(torch.tensor([[2.0, 0.0]]), gallery, k=2)  # three items tie at 1.0
    assert idx.tolist() == [[0, 2]] and scores.tolist() == [[1.0, 1.0]]
    idx, _ = top_k(torch.tensor([[0.0, 1.0]]), gallery, k=10)  # k clamps to the gallery
    assert idx.tolist() == [[1, 3, 0, 2, 4]]


def plain_tree_sum(values: list[float]) -> float:
    """Adjacent pairs added level by level (a zero appended to an odd level), in Python floats."""
    values = list(values)
    while len(values) > 1:
        if len(values) % 2:
            values.append(0.0)
        values = [values[i] + values[i + 1] for i in range(0, len(values), 2)]
    return values[0]


def plain_grid_row(row) -> list[int]:
    """One feature row on the scoring grid, the plain way: scaled by a power of two (math.ldexp,
    exact), the squared norm by :func:`plain_tree_sum`, Python's round (half to even, as
    torch.round)."""
    values = [float(x) for x in row]
    exponent = math.frexp(max(abs(x) for x in values))[1]
    values = [math.ldexp(x, -exponent) for x in values]
    norm = max(math.sqrt(plain_tree_sum([x * x for x in values])), 1e-12)
    return [round(x / norm * 2**metrics_module.GRID_BITS) for x in values]


def plain_scores(q, g) -> np.ndarray:
    """Exact integer dot products of the grid rows (Python ints), rounded once to float32."""
    qg, gg = [plain_grid_row(r) for r in q], [plain_grid_row(r) for r in g]
    scale = 2.0 ** (-2 * metrics_module.GRID_BITS)
    return np.array([[np.float32(sum(a * b for a, b in zip(x, y)) * scale) for y in gg]
                     for x in qg], dtype=np.float32)


def tie_heavy_features(seed: int = 0, n_query: int = 37, n_gallery: int = 211, dim: int = 6):
    """Features with a few integer values: many scores tie exactly in exact arithmetic (the
    case of duplicated photos or quantised features), plus exact duplicate gallery rows."""
    rng = np.random.default_rng(seed)
    q = rng.integers(-2, 3, (n_query, dim)).astype(np.float32) + 0.5
    g = rng.integers(-1, 2, (n_gallery, dim)).astype(np.float32)
    g[np.abs(g).sum(1) == 0, 0] = 1  # no zero rows
    g[1::7] = g[0]  # duplicates of one photo, spread through the gallery
    return q, rng.integers(0, 5, n_query), g, rng.integers(0, 5, n_gallery)


def test_fixed_order_row_sums_are_a_tree_that_padding_does_not_change():
    rng = np.random.default_rng(1)
    for dim in (1, 2, 3, 7, 64, 384, 385):
        x = rng.standard_normal((5, dim))
        got = metrics_module._fixed_order_row_sums(torch.from_numpy(x))
        for i in range(5):
            assert got[i].item() == plain_tree_sum(x[i].tolist())  # bit for bit
        # A query's row is padded with zeros to the widest row of its chunk: no change.
        for extra in (1, 2, 5, 100):
            padded = np.concatenate([x, np.zeros((5, extra))], axis=1)
            assert torch.equal(metrics_module._fixed_order_row_sums(torch.from_numpy(padded)),
                               got)


@pytest.mark.parametrize("make", ["random", "tie-heavy", "scaled", "extreme"])
def test_cosine_scores_equal_the_plain_exact_computation(make):
    rng = np.random.default_rng(2)
    if make == "random":
        q, g = rng.standard_normal((6, 48)).astype(np.float32), rng.standard_normal((23, 48))
    elif make == "tie-heavy":
        q, _, g, _ = tie_heavy_features(n_query=6, n_gallery=40)
    elif make == "scaled":  # a norm far from 1 and a zero row
        q = rng.standard_normal((4, 10)).astype(np.float32) * 1e4
        g = rng.standard_normal((9, 10)).astype(np.float32) * 1e-3
        g[3] = 0
    else:  # float64 rows whose squares would overflow or underflow
        q = rng.standard_normal((3, 10)) * 1e200
        g = rng.standard_normal((5, 10)) * np.array([[1e-300], [1e300], [1.0], [1e-200], [1e150]])
    got = metrics_module.cosine_scores(q, g).numpy()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, plain_scores(q, g))  # bit for bit, not approximately


def test_grid_product_is_exact_at_a_real_feature_size():
    """768-d rows: the float64 BLAS product of the grids equals Python's integer products."""
    rng = np.random.default_rng(3)
    q = metrics_module.grid_features(torch.from_numpy(rng.standard_normal((3, 768))))
    g = metrics_module.grid_features(torch.from_numpy(rng.standard_normal((5, 768))))
    assert q.abs().max() <= 2**metrics_module.GRID_BITS
    product = (q @ g.T).tolist()
    for i in range(3):
        for j in range(5):
            exact = sum(int(a) * int(b) for a, b in zip(q[i].tolist(), g[j].tolist()))
            assert product[i][j] == exact


@pytest.mark.parametrize("k, chunk_size", [(1, None), (3, 2), (7, 5), (40, 3), (40, 1)])
def test_top_k_equals_a_stable_sort_of_the_exact_scores(k, chunk_size):
    # Few distinct values: many ties, inside and at the edge of the top k; duplicated rows.
    q, _, g, _ = tie_heavy_features(n_query=9, n_gallery=30, dim=4)
    idx, scores = top_k(q, g, k=k, chunk_size=chunk_size)
    ref = plain_scores(q, g)
    for i in range(len(q)):
        row = ref[i].tolist()
        order = sorted(range(len(g)), key=lambda j: (-row[j], j))[:k]
        assert idx[i].tolist() == order
        assert scores[i].tolist() == [row[j] for j in order]


def test_duplicated_gallery_rows_always_tie():
    q, _, g, _ = tie_heavy_features()
    scores = metrics_module.cosine_scores(q, g)
    assert torch.equal(scores[:, 1::7], scores[:, :1].expand(-1, len(g[1::7])))


def _results_under(chunk_size, threads: int, seed: int = 0) -> tuple:
    q, ql, g, gl = tie_heavy_features(seed)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        metrics = {}
        for convention in metrics_module.CONVENTIONS:
            result = evaluate_retrieval(q, ql, g, gl, convention=convention,
                                        chunk_size=chunk_size, per_query=True)
            result["per_query"] = {k: v.tolist() for k, v in result["per_query"].items()}
            metrics[convention] = result
        indices, scores = top_k(q, g, k=25, chunk_size=chunk_size)
    finally:
        torch.set_num_threads(before)
    return metrics, indices.tolist(), scores.tolist()


def test_rankings_and_metrics_do_not_depend_on_chunk_size_or_threads(ranking_path):
    """Issue 24: with float32 products, tie-heavy inputs gave mAP@all 0.232987 with chunk_size=1
    and 0.233050 unchunked. Every value must now be identical, not close."""
    for seed in (0, 1):  # every query's value as well as the means, every convention
        reference = _results_under(None, 1, seed)
        for chunk_size in (1, 2, 5, 36, None):
            for threads in (1, 2):
                assert _results_under(chunk_size, threads, seed) == reference, (chunk_size,
                                                                                threads)


_DIGEST_SCRIPT = """
import hashlib, json, sys
import numpy as np, torch
sys.path.insert(0, {tests!r})
from test_metrics import tie_heavy_features
from amalib.metrics import cosine_scores, evaluate_retrieval, top_k
q, ql, g, gl = tie_heavy_features()
rng = np.random.default_rng(5)
qr, gr = rng.standard_normal((50, 384), dtype=np.float32), rng.standard_normal((300, 384))
print(json.dumps({{
    "scores": hashlib.sha256(cosine_scores(qr, gr).numpy().tobytes()).hexdigest(),
    "top_k": top_k(q, g, k=25, chunk_size={chunk})[0].tolist(),
    "metrics": {{k: ({{m: a.tolist() for m, a in v.items()}} if k == "per_query" else v)
                 for k, v in evaluate_retrieval(q, ql, g, gl, chunk_size={chunk},
                                                per_query=True).items()}},
}}))
"""


def test_scores_are_the_same_under_another_cpu_capability():
    """The same bits with torch's and MKL's lowest kernels, MKL's compatible code path and one
    thread, in a fresh process: a CPU-dependent score or tie order fails here on any machine.
    (``MKL_CBWR=COMPATIBLE`` alone changes float32 matrix products on an AVX-512 machine.)"""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = str(Path(__file__).parent)
    outputs = []
    for env, chunk in (({}, "None"),
                       ({"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                         "MKL_CBWR": "COMPATIBLE", "OMP_NUM_THREADS": "1"}, "3")):
        script = _DIGEST_SCRIPT.format(tests=tests, chunk=chunk)
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              env={**os.environ, **env}, timeout=120)
        assert done.returncode == 0, done.stderr
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1]


def test_top_k_bad_inputs():
    with pytest.raises(ValueError, match="at least 1"):
        top_k(np.ones((1, 2)), np.ones((3, 2)), k=0)
    with pytest.raises(ValueError, match="same dim"):
        top_k(np.ones((1, 2)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        top_k(np.full((1, 2), np.nan), np.ones((3, 2)))


def _ranked_gallery(relevant_ranks: list[int], n_gallery: int = 300):
    """One query's scores that rank the gallery in index order, and gallery labels: the query's
    class (0) at the given 1-based ranks, class -1 everywhere else."""
    scores = np.linspace(1.0, 0.0, n_gallery, dtype=np.float64)[None, :]
    labels = np.full(n_gallery, -1)
    labels[np.array(relevant_ranks) - 1] = 0
    return scores, labels


# Query A: relevant at 1-based ranks 2, 3, 7, 250 (R = 4); query B: at 1, 101, 201 (R = 3).
_HAND = {"A": [2, 3, 7, 250], "B": [1, 101, 201]}
_HAND_EXPECTED = {
    # AP@all interpolated: the envelope of A's precisions 1/2, 2/3, 3/7, 4/250 is 2/3, 2/3, 3/7,
    # 4/250; B's 1, 2/101, 3/201 is already non-increasing.
    "ama": {"A": {"mAP@all": (2/3 + 2/3 + 3/7 + 4/250) / 4, "mAP@200": (2/3 + 2/3 + 3/7) / 4,
                  "P@100": 3 / 100, "P@200": 3 / 200},
            "B": {"mAP@all": (1 + 2/101 + 3/201) / 3, "mAP@200": (1 + 2/101) / 3,
                  "P@100": 1 / 100, "P@200": 2 / 200}},
    "sklearn": {"A": {"mAP@all": (1/2 + 2/3 + 3/7 + 4/250) / 4, "mAP@200": (1/2 + 2/3 + 3/7) / 4,
                      "P@100": 3 / 100, "P@200": 3 / 200},
                "B": {"mAP@all": (1 + 2/101 + 3/201) / 3, "mAP@200": (1 + 2/101) / 3,
                      "P@100": 1 / 100, "P@200": 2 / 200}},
    # P@K = hits in the top min(K, R) / min(K, R): A's top 4 holds 2 hits, B's top 3 one.
    "zse-sbir": {"A": {"mAP@all": (2/3 + 2/3 + 3/7 + 4/250) / 4, "mAP@200": (2/3 + 2/3 + 3/7) / 4,
                       "P@100": 2 / 4, "P@200": 2 / 4},
                 "B": {"mAP@all": (1 + 2/101 + 3/201) / 3, "mAP@200": (1 + 2/101) / 3,
                       "P@100": 1 / 3, "P@200": 1 / 3}},
    # mAP@200 divides by the hits in the top 200 (A: 3, B: 2).
    "sem-pcyc": {"A": {"mAP@all": (1/2 + 2/3 + 3/7 + 4/250) / 4, "mAP@200": (1/2 + 2/3 + 3/7) / 3,
                       "P@100": 3 / 100, "P@200": 3 / 200},
                 "B": {"mAP@all": (1 + 2/101 + 3/201) / 3, "mAP@200": (1 + 2/101) / 2,
                       "P@100": 1 / 100, "P@200": 2 / 200}},
    # P@K: is the item at 1-based rank K + 1 relevant? A: ranks 101 and 201 are not; B: both are.
    "doodle2search": {"A": {"mAP@all": (1/2 + 2/3 + 3/7 + 4/250) / 4,
                            "mAP@200": (1/2 + 2/3 + 3/7) / 3, "P@100": 0.0, "P@200": 0.0},
                      "B": {"mAP@all": (1 + 2/101 + 3/201) / 3, "mAP@200": (1 + 2/101) / 2,
                            "P@100": 1.0, "P@200": 1.0}},
}


@pytest.mark.parametrize("convention", sorted(_HAND_EXPECTED))
def test_each_named_convention_by_hand(convention, ranking_path):
    for name, ranks in _HAND.items():
        scores, labels = _ranked_gallery(ranks)
        result = evaluate_scores(scores, [0], labels, convention=convention)
        assert result["convention"] == convention
        assert result["ap"] == metrics_module.CONVENTIONS[convention].ap
        for key, value in _HAND_EXPECTED[convention][name].items():
            assert result[key] == pytest.approx(value, rel=1e-12), (name, key)


def test_hits_denominator_scores_a_query_without_hits_in_the_top_200_as_zero():
    scores, labels = _ranked_gallery([250, 260])
    result = evaluate_scores(scores, [0], labels, convention="sem-pcyc")
    assert result["mAP@200"] == 0.0 and result["n_used"] == 1


def test_the_default_convention_is_the_release_and_ap_still_selects():
    scores, labels = _ranked_gallery(_HAND["A"])
    default = evaluate_scores(scores, [0], labels)
    assert default["convention"] == "ama" and default["ap"] == "interpolated"
    assert evaluate_scores(scores, [0], labels, ap="sklearn")["convention"] == "sklearn"
    with pytest.raises(ValueError, match="contradicts convention 'sem-pcyc'"):
        evaluate_scores(scores, [0], labels, ap="interpolated", convention="sem-pcyc")
    with pytest.raises(ValueError, match="unknown metric convention 'voc'.*ama, sklearn"):
        evaluate_scores(scores, [0], labels, convention="voc")


def plain_convention_metrics(row_scores, relevant, convention: str) -> dict:
    """One query's metrics under ``convention``, the plain way: sort, walk, divide."""
    n = len(row_scores)
    order = sorted(range(n), key=lambda j: (-row_scores[j], j))
    rel = [bool(relevant[j]) for j in order]
    r = sum(rel)
    hits, found = [], 0  # (0-based rank, precision) at each hit
    for i, is_hit in enumerate(rel):
        if is_hit:
            found += 1
            hits.append((i, found / (i + 1)))
    interpolated = metrics_module.CONVENTIONS[convention].ap == "interpolated"

    def ap(at_hits, denominator):
        if not at_hits:
            return 0.0
        values = [max(p for _, p in at_hits[t:]) if interpolated else at_hits[t][1]
                  for t in range(len(at_hits))]
        return sum(values) / denominator

    in_top = [h for h in hits if h[0] < min(200, n)]
    top_denominator = (max(1, len(in_top)) if convention in ("sem-pcyc", "doodle2search")
                       else min(200, r))
    out = {"mAP@all": ap(hits, r), "mAP@200": ap(in_top, top_denominator)}
    for k in (100, 200):
        if convention == "zse-sbir":
            out[f"P@{k}"] = sum(rel[:min(k, r)]) / min(k, r)
        elif convention == "doodle2search":
            out[f"P@{k}"] = float(rel[k]) if k < n else 0.0
        else:
            out[f"P@{k}"] = sum(rel[:min(k, n)]) / min(k, n)
    return out


@pytest.mark.parametrize("n_gallery", [5, 100, 150, 200, 201, 420])
def test_every_convention_equals_the_plain_computation_per_query(n_gallery, ranking_path):
    """Several queries a chunk with unequal numbers of relevant items (so rows are padded),
    galleries shorter than, equal to and longer than 100 and 200, many ties."""
    rng = np.random.default_rng(n_gallery)
    glab = rng.integers(0, 4, n_gallery)
    glab[:3] = [0, 1, 2]
    qlab = rng.integers(0, 5, 9)  # class 4 has no photo: excluded
    scores = rng.integers(0, 20, (9, n_gallery)).astype(np.float32)
    for convention in metrics_module.CONVENTIONS:
        for chunk_size in (1, 4, None):
            got = evaluate_scores(scores, qlab, glab, convention=convention,
                                  chunk_size=chunk_size, per_query=True)["per_query"]
            for i in range(9):
                if not (glab == qlab[i]).any():
                    assert all(np.isnan(got[k][i]) for k in got)
                    continue
                expected = plain_convention_metrics(scores[i].tolist(), glab == qlab[i],
                                                    convention)
                for key, value in expected.items():
                    assert got[key][i] == pytest.approx(value, rel=1e-12, abs=1e-15), \
                        (convention, chunk_size, i, key)


def test_precision_recall_curve_by_hand():
    """One query, gallery ranked in index order by construction; hits at ranks 2, 3, 7 (R = 3):
    precisions 1/2, 2/3, 3/7, envelope 2/3, 2/3, 3/7. Interpolated precision at recall r is the
    envelope at the first hit whose recall reaches r."""
    from amalib.metrics import precision_recall_curve

    # 2-d features at decreasing angles from the query: cosine falls with the gallery index.
    angles = np.linspace(0.0, 1.5, 8)
    gallery = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = np.array([1, 0, 0, 1, 1, 1, 0, 1])
    levels, precision = precision_recall_curve([[1.0, 0.0]], [0], gallery, labels, n_points=5)
    assert levels.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    # recall 0 and 0.25 -> first hit (2/3); 0.5 -> second hit (2/3); 0.75, 1 -> third (3/7)
    assert precision == pytest.approx([2 / 3, 2 / 3, 2 / 3, 3 / 7, 3 / 7], abs=1e-12)
