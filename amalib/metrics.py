"""Exact, chunked retrieval metrics for zero-shot sketch-based image retrieval.

Sketch queries are ranked against a photo gallery by cosine similarity; an item is relevant when
its class equals the query's. The metrics follow the conventions of the SBIR literature:

* **mAP@all** — mean over queries of the average precision of the full ranking.
* **mAP@200** — average precision of the top-200 list, with recall normalised by
  ``min(200, number of relevant items in the whole gallery)``.
* **P@100**, **P@200** — relevant items among the top K divided by K (by the gallery size when the
  gallery holds fewer than K items, since the top-K list is then the whole gallery).

Two AP conventions are offered and every result says which one it used:

* ``ap="interpolated"`` (default, what the AMA release reports): VOC-style — precision is made
  monotone non-increasing from the right (the precision envelope) and AP sums
  ``Δrecall × envelope`` over the ranking.
* ``ap="sklearn"``: non-interpolated AP, ``Σ_k P@k · Δrecall_k`` (scikit-learn's
  ``average_precision_score``, used by SEM-PCYC and Doodle2Search). With tied scores scikit-learn
  treats a tie as one threshold; amalib breaks ties deterministically instead (next paragraph), so
  the two agree exactly whenever a query's scores have no ties.

**Named conventions.** Published ZS-SBIR tables do not all mean the same by these names. Each
code base's reading is a named ``convention`` of :func:`evaluate_retrieval` (and ``amalib eval
--convention``); the default, ``"ama"``, is the AMA release's. Every result records the
convention it used. See :data:`CONVENTIONS` and ``docs/metric_conventions.md`` for file and line
of each code base.

=================  ============  =========================  ====================================
convention         AP            mAP@200 divides by         P@K
=================  ============  =========================  ====================================
``ama`` (default)  interpolated  min(200, R)                hits in the top K / K
``sklearn``        plain         min(200, R)                hits in the top K / K
``zse-sbir``       interpolated  min(200, R)                hits in the top min(K, R) / min(K, R)
``sem-pcyc``       plain         hits in the top 200        hits in the top K / K
``doodle2search``  plain         hits in the top 200        1 if the item at rank K + 1 is relevant
=================  ============  =========================  ====================================

(``R``: relevant items in the whole gallery; "plain" is ``ap="sklearn"`` above. Under the
"hits in the top 200" reading a query with no hit there scores 0 and still counts.)

Ties in score are broken by gallery order (a stable sort): of two equally scored photos, the one
listed first in the gallery ranks first. Queries whose class has no photo in the gallery are
excluded from every mean and counted in ``n_excluded``.

**Scores that do not depend on how they are computed.** A tie-break by gallery order means
something only if equal scores come out equal. A float32 matrix product does not promise that:
two exactly tied products can differ by an ulp depending on how many rows the product had (the
chunk size), the thread count and the CPU's kernels (AVX-512, AVX2, SSE), so the tie order, and
with it top-k lists and the metrics, would move with them. amalib therefore scores on a fixed
grid (:func:`cosine_scores`):

1. each feature row is normalised in float64 with a fixed-order sum of squares (a pairwise tree
   of elementwise additions, each correctly rounded, so no SIMD width or thread count can change
   it) and its components are rounded to multiples of ``2**-26``;
2. the scores are the products of those integer grids in float64: every product and every
   partial sum is an integer below ``2**53``, so the matrix product is **exact** whatever the
   BLAS, its blocking, FMA, threads, chunk size or device;
3. each exact score is rounded once to float32 (correctly rounded: the same everywhere).

The result is a function of the input features alone: the same scores, rankings, top-k lists and
metric values on every machine, chunk size and thread count. The grid moves a cosine by at most
about ``√D · 2**-26`` (in practice about ``2**-27``; far below what separates two photos), the
float32 rounding of the score by ``2**-25``, so features given in float64 are ranked at float32
resolution. The float64 product costs about twice a float32 one on a CPU and on data-centre GPUs
(``benchmarks/bench_metrics.py``); consumer GPUs run float64 at 1/32 to 1/64 of float32. MPS has no
float64: there the scores are computed on the CPU. Features computed by a
network are another matter: a model's forward pass itself differs by ulps across CPUs and batch
sizes, so two machines compare the same only when given the same features.

The score matrix is never materialised whole: queries are processed in chunks on the device of the
features (CPU or CUDA), so a QuickDraw-sized evaluation (92,291 × 54,151) fits in a few GB. Nor is
any ranking: every metric depends only on the ranks of a query's relevant items, which are found
by sorting each row's scores by value and binary-searching the relevant scores in it
(:func:`_positive_ranks`).

See ``notebooks/06_retrieval_evaluation.ipynb`` for plots of these metrics.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

__all__ = ["evaluate_retrieval", "evaluate_scores", "average_precision", "chance_levels", "top_k",
           "cosine_scores", "grid_features", "unit_features", "rescore_candidates", "top_k_of_grid",
           "precision_recall_curve", "METRIC_KEYS",
           "CONVENTIONS", "Convention"]

APConvention = Literal["interpolated", "sklearn"]
METRIC_KEYS = ("mAP@all", "mAP@200", "P@100", "P@200")
_TOP = 200
_PRECISION_KS = (100, 200)
#: Unit-norm feature components are rounded to multiples of ``2**-GRID_BITS`` before scoring.
#: With |component| <= 1 every grid value is an integer in [-2**26, 2**26], so a dot product of
#: two grid rows and every partial sum of it is an integer below ``2**53`` (Cauchy-Schwarz bounds
#: them by the product of the rows' norms, about ``2**52``): float64 holds them exactly.
GRID_BITS = 26
_GRID = float(2**GRID_BITS)
_SCORE_SCALE = 2.0 ** (-2 * GRID_BITS)


def _as_tensor(x, name: str, *, dtype=None, device=None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    elif isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x)}") from err
    if device is not None:
        t = t.to(device)
    if dtype is not None:
        t = t.to(dtype)
    return t


def _check_labels(labels, n: int, name: str, features_name: str, device) -> torch.Tensor:
    t = _as_tensor(labels, name, device=device)
    if t.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {tuple(t.shape)}")
    if t.shape[0] != n:
        raise ValueError(
            f"{name} has {t.shape[0]} entries but {features_name} has {n} rows: "
            "there must be one label per row"
        )
    if t.is_floating_point():
        if not torch.equal(t, t.round()):
            raise ValueError(f"{name} must hold integer class ids")
    return t.to(torch.int64)


def _check_pair(q: torch.Tensor, g: torch.Tensor) -> None:
    """Query and gallery features are ``(n, dim)`` with the same ``dim``."""
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"query_features {tuple(q.shape)} and gallery_features "
                         f"{tuple(g.shape)} must be (n, dim) with the same dim")


def _check_ap(ap: str) -> None:
    if ap not in ("interpolated", "sklearn"):
        raise ValueError(f"ap must be 'interpolated' or 'sklearn', got {ap!r}")


@dataclass(frozen=True)
class Convention:
    """How one code base reads mAP@all, mAP@200 and P@K (see the module docstring).

    Attributes:
        name: Its name in :data:`CONVENTIONS`.
        ap: ``"interpolated"`` (VOC precision envelope) or ``"sklearn"`` (plain).
        top_denominator: mAP@200's recall denominator: ``"min(K,R)"`` or ``"hits@K"``.
        precision: P@K: ``"hits/K"``, ``"hits@min(K,R)"`` (precision at rank ``min(K, R)``)
            or ``"relevant@K+1"`` (whether the item at rank ``K + 1`` is relevant).
        source: The code base and file it reproduces.
    """

    name: str
    ap: str
    top_denominator: str
    precision: str
    source: str


#: The metric conventions of the ZS-SBIR code bases, by name (``docs/metric_conventions.md``).
CONVENTIONS: dict[str, Convention] = {c.name: c for c in (
    Convention("ama", "interpolated", "min(K,R)", "hits/K",
               "AMA release main.py (VOC AP of SAKE); the default"),
    Convention("sklearn", "sklearn", "min(K,R)", "hits/K",
               "amalib's non-interpolated AP (ap='sklearn'), otherwise the release's"),
    Convention("zse-sbir", "interpolated", "min(K,R)", "hits@min(K,R)", "ZSE-SBIR utils/ap.py"),
    Convention("sem-pcyc", "sklearn", "hits@K", "hits/K", "SEM-PCYC src/utils.py"),
    Convention("doodle2search", "sklearn", "hits@K", "relevant@K+1", "doodle2search src/test.py"),
)}


def _resolve_convention(ap: str | None, convention: str | None) -> Convention:
    """The convention named by ``convention``, or by the older ``ap`` switch alone."""
    if ap is not None:
        _check_ap(ap)
    if convention is None:
        convention = "sklearn" if ap == "sklearn" else "ama"
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown metric convention {convention!r}; choose from "
                         f"{', '.join(CONVENTIONS)}")
    conv = CONVENTIONS[convention]
    if ap is not None and ap != conv.ap:
        raise ValueError(f"ap={ap!r} contradicts convention {convention!r}, whose AP is "
                         f"{conv.ap!r}: pass one of the two")
    return conv


def _fixed_order_row_sums(v: torch.Tensor) -> torch.Tensor:
    """Sum of each row of ``v`` by one fixed tree of elementwise additions of adjacent pairs.

    ``v.sum(dim=1)`` adds in an order that depends on the SIMD width and the thread count; an
    elementwise addition is correctly rounded on every CPU and GPU, so this tree gives the same
    bits everywhere. Each node adds one aligned block (entries ``j·2^l … (j+1)·2^l - 1``), so
    zeros appended to a row change nothing: a query's sum does not depend on the width its
    chunk was padded to.
    """
    while v.shape[1] > 1:
        if v.shape[1] % 2:
            v = torch.cat([v, v.new_zeros((v.shape[0], 1))], dim=1)
        v = v[:, 0::2] + v[:, 1::2]
    return v[:, 0]


def grid_features(features: torch.Tensor) -> torch.Tensor:
    """Rows of ``features`` at unit L2 norm on the grid of multiples of ``2**-GRID_BITS``.

    Returns the grid numerators: a float64 tensor of integers in ``[-2**26, 2**26]`` on the
    device of ``features``; ``grid / 2**GRID_BITS`` is the normalised row. The same bits on
    every machine (see the module docstring). A zero row stays zero.
    """
    x = features.to(torch.float64)
    if x.shape[1] == 0:
        return x
    # Scale each row by a power of two (exact) so that its largest entry is in [0.5, 1): the
    # squares can neither overflow nor underflow, and the normalised row is unchanged.
    _, exponent = torch.frexp(x.abs().amax(dim=1, keepdim=True))
    # 2**-exponent built from its bits (exact on every device; pow/exp2 promise no exactness).
    power = (1023 - exponent.to(torch.int64)).clamp(1, 2046)
    x = x * (power << 52).view(torch.float64)
    norm = torch.sqrt(_fixed_order_row_sums(x * x)).clamp_min(1e-12)
    return torch.round(x / norm[:, None] * _GRID)


def unit_features(features) -> torch.Tensor:
    """``features`` at unit L2 norm as float32, the same bits on every machine.

    :func:`grid_features` rounded once to float32: what a gallery stores
    (:class:`~amalib.retrieval.index.GalleryIndex`, in memory or in its file), so that two
    machines store the same rows.
    """
    x = _as_tensor(features, "features")
    if x.ndim != 2:
        raise ValueError(f"features must be (n, dim), got shape {tuple(x.shape)}")
    return (grid_features(x.to(_grid_device(x.device))) / _GRID).to(torch.float32)


def _grid_device(device: torch.device | str) -> torch.device:
    """Where the float64 grid product can run: MPS has no float64, so it runs on the CPU."""
    device = torch.device(device)
    return torch.device("cpu") if device.type == "mps" else device


def _grid_scores(q_grid: torch.Tensor, g_grid_t: torch.Tensor, out: torch.Tensor | None = None,
                 work: torch.Tensor | None = None) -> torch.Tensor:
    """float32 cosine scores of grid rows: the exact float64 product, rounded once.

    Args:
        q_grid: ``(q, D)`` grid numerators (:func:`grid_features`).
        g_grid_t: ``(D, G)`` the gallery's, transposed.
        out: optional ``(q, G)`` float32 buffer; work: optional ``(q, G)`` float64 buffer.
    """
    if work is None:
        work = torch.matmul(q_grid, g_grid_t)
    else:
        torch.matmul(q_grid, g_grid_t, out=work)
    if out is None:
        out = torch.empty(work.shape, dtype=torch.float32, device=work.device)
    out.copy_(work)  # one correctly rounded conversion of an exact integer
    # A power of two: exact. Adding 0.0 turns a -0.0 (a BLAS's sign of an exact zero) into +0.0.
    return out.mul_(_SCORE_SCALE).add_(0.0)


def cosine_scores(query_features, gallery_features) -> torch.Tensor:
    """``(Q, G)`` float32 cosine similarities, the same bits on every machine.

    The scores every ranking in amalib uses (metrics, :func:`top_k`, the gallery index's exact
    search): features are normalised and rounded to a grid, multiplied exactly and rounded once
    (see the module docstring). For a whole test set use :func:`evaluate_retrieval` or
    :func:`top_k`, which never hold the full matrix.
    """
    q = _as_tensor(query_features, "query_features")
    g = _as_tensor(gallery_features, "gallery_features")
    if q.ndim == 1:
        q = q[None]
    _check_pair(q, g)
    device = _grid_device(q.device)
    return _grid_scores(grid_features(q.to(device)), grid_features(g.to(device)).T)


def _sorted_relevance(
    scores: torch.Tensor, query_labels: torch.Tensor, gallery_labels: torch.Tensor
) -> torch.Tensor:
    """Relevance of the gallery in ranked order: ``(q, G)`` bool, best score first.

    The full ranking, for rows with many tied relevant items (see :func:`_positive_ranks`). Ties
    are broken by gallery index. For float32 scores each entry is packed into one int64 sort key — high word:
    the score's bits mapped to an order-preserving int32 (descending), low word:
    ``2 * gallery_index + relevant`` — so a plain (unstable, SIMD) sort of values gives the stable
    ranking and carries the relevance bit along, with no argsort and no gather. Other dtypes use a
    stable ``torch.sort`` of the scores.
    """
    relevant = gallery_labels[None, :] == query_labels[:, None]
    n_query, n_gallery = scores.shape
    if scores.dtype != torch.float32 or sys.byteorder != "little" or n_gallery >= 2**30:
        order = torch.sort(-scores, dim=1, stable=True).indices
        return torch.gather(relevant, 1, order)
    # Order-preserving map of float32 (of -score, so ascending = best first) to int32; 0.0 - x
    # turns -0.0 into +0.0 so that the two zeros tie like the floats do.
    bits = torch.sub(0.0, scores).view(torch.int32)
    bits = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    keys = torch.empty((n_query, n_gallery), dtype=torch.int64, device=scores.device)
    words = keys.view(torch.int32).view(n_query, n_gallery, 2)  # little-endian: (low, high)
    words[..., 1] = bits
    index2 = torch.arange(0, 2 * n_gallery, 2, dtype=torch.int32, device=scores.device)
    torch.bitwise_or(index2, relevant.to(torch.int32), out=words[..., 0])
    if keys.device.type == "cpu":
        keys_np = keys.numpy()
        keys_np.sort(axis=1)
    else:
        keys = torch.sort(keys, dim=1).values
        words = keys.view(torch.int32).view(n_query, n_gallery, 2)
    return (words[..., 0] & 1).bool()


_TIED_PER_ROW_LIMIT = 16  # more tied relevant items than this in a row: rank the whole row
_CPU_PATH = True  # tests switch it off to run the vectorised torch path on the CPU
_sort_pool = None  # (ThreadPoolExecutor, pid of the process that created it)


def _workspace_buffer(workspace: dict | None, like: np.ndarray) -> np.ndarray:
    """An uninitialised array like ``like``, reused from chunk to chunk via ``workspace``.

    Fresh memory for every chunk costs more in page faults than the sorting done in it.
    """
    key = (like.dtype.str, like.shape[1:])
    buffer = None if workspace is None else workspace.get(key)
    if buffer is None or len(buffer) < len(like):
        buffer = np.empty(like.shape, like.dtype)  # C order: rows contiguous for the sort
        if workspace is not None:
            workspace[key] = buffer
    return buffer[: len(like)]


def _row_pool(n_threads: int):
    """The module's sorting thread pool, rebuilt in a forked child (its threads did not follow)."""
    global _sort_pool
    import os

    pid = os.getpid()
    if _sort_pool is not None:
        pool, owner = _sort_pool
        if owner == pid and pool._max_workers >= n_threads:
            return pool
        if owner == pid:
            pool.shutdown(wait=False)
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(n_threads, thread_name_prefix="amalib-metrics")
    _sort_pool = (pool, pid)
    return pool


def _over_row_blocks(work, n_rows: int, size: int) -> None:
    """Run ``work(rows: slice)`` over blocks of rows in ``torch.get_num_threads()`` threads.

    The numpy sorts and binary searches that ``work`` does release the GIL.
    """
    n_threads = min(torch.get_num_threads(), n_rows)
    if n_threads <= 1 or size < 65536:
        work(slice(0, n_rows))
        return
    bounds = np.linspace(0, n_rows, n_threads + 1).astype(int)
    blocks = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    for _ in _row_pool(n_threads).map(work, blocks):
        pass


def _ranks_cpu(scores: torch.Tensor, columns: torch.Tensor, valid: torch.Tensor,
               workspace: dict | None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_positive_ranks` on the CPU, one row at a time in parallel threads.

    Each row is sorted with numpy's SIMD sort (several times faster than ``torch.sort`` on a
    CPU) into a buffer reused from chunk to chunk, and searched with its relevant scores in
    ascending order, so the row and the search stay in cache. Returns the ranks and a bool per
    row that asks for the full ranking (too many tied relevant items).
    """
    src, cols = scores.numpy(), columns.numpy()
    n_query, n_gallery = src.shape
    n_rel = valid.sum(dim=1).numpy()
    buffer = _workspace_buffer(workspace, src)
    ranks = np.full(cols.shape, n_gallery, dtype=np.int64)
    too_many_ties = np.zeros(n_query, dtype=bool)

    def work(rows: slice) -> None:
        for i in range(rows.start, rows.stop):
            row_cols = cols[i, : n_rel[i]]
            positive = src[i, row_cols]
            order = np.argsort(positive)
            positive, row_cols = positive[order], row_cols[order]
            ordered = buffer[i]
            ordered[:] = src[i]
            ordered.sort()
            below = np.searchsorted(ordered, positive)  # #{score < s}
            # s itself sits at ``below``; it is tied when the next slot holds the same value.
            nxt = np.minimum(below + 1, n_gallery - 1)
            tied = np.flatnonzero((below + 1 < n_gallery) & (ordered[nxt] == positive))
            equal_from_j = np.ones_like(below)  # #{score == s, index >= j}
            if len(tied) > _TIED_PER_ROW_LIMIT:
                too_many_ties[i] = True
                continue
            for k in tied:
                equal_from_j[k] = np.count_nonzero(src[i, row_cols[k]:] == positive[k])
            row_ranks = n_gallery - below - equal_from_j
            row_ranks.sort()
            ranks[i, : n_rel[i]] = row_ranks

    _over_row_blocks(work, n_query, src.size)
    return torch.from_numpy(ranks), torch.from_numpy(too_many_ties)


def _ranks_torch(scores: torch.Tensor, columns: torch.Tensor, valid: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_positive_ranks` vectorised over the chunk (CUDA and other devices)."""
    n_gallery = scores.shape[1]
    positive = scores.gather(1, columns)
    ordered = torch.sort(scores, dim=1).values.contiguous()  # a strided input keeps its strides
    below = torch.searchsorted(ordered, positive)  # #{score < s}
    # s itself sits at ``below``; it is tied when the next slot holds the same value.
    after = ordered.gather(1, (below + 1).clamp_(max=n_gallery - 1))
    tied = valid & (below + 1 < n_gallery) & (after == positive)
    del ordered, after
    equal_from_j = torch.ones_like(below)  # #{score == s, index >= j}
    n_tied = tied.sum(dim=1)
    too_many_ties = n_tied > _TIED_PER_ROW_LIMIT
    r, k = (tied & ~too_many_ties[:, None]).nonzero(as_tuple=True)
    index = torch.arange(n_gallery, device=scores.device)
    for a in range(0, len(r), 256):
        sl = slice(a, a + 256)
        hits = (scores[r[sl]] == positive[r[sl], k[sl], None]) & (index >= columns[r[sl], k[sl], None])
        equal_from_j[r[sl], k[sl]] = hits.sum(dim=1)
    ranks = torch.where(valid, n_gallery - below - equal_from_j, n_gallery)
    return torch.sort(ranks, dim=1).values, too_many_ties


def _positive_ranks(
    scores: torch.Tensor,
    query_labels: torch.Tensor,
    gallery_labels: torch.Tensor,
    columns: torch.Tensor,
    valid: torch.Tensor,
    workspace: dict | None = None,
) -> torch.Tensor:
    """0-based ranks of each query's relevant gallery items, ascending: ``(q, P)`` int64.

    Only the ranks of the relevant items matter for every metric here, so the ranking itself is
    never built. Each row's scores are sorted by value (no indices); the rank of a relevant item
    at gallery index ``j`` with score ``s`` is ``#{score > s} + #{score == s, index < j}`` (ties
    go to the earlier gallery item, as in a stable sort). A binary search in the sorted row gives
    ``#{score < s}``; when no other item has exactly the score ``s`` the rank follows from it.
    Exact ties (common with float32 scores in a narrow range) are counted directly in the row;
    a row with many tied relevant items is ranked in full by :func:`_sorted_relevance`.

    Args:
        scores: ``(q, G)`` similarity of each query to each gallery item (finite).
        query_labels: ``(q,)`` class ids.
        gallery_labels: ``(G,)`` class ids.
        columns: ``(q, P)`` gallery indices of each query's relevant items, in the first
            ``n_relevant`` entries of the row (any value where ``valid`` is false).
        valid: ``(q, P)`` bool, true for the first ``n_relevant`` entries of each row.
        workspace: buffers reused from chunk to chunk (see :func:`_workspace_buffer`).

    Returns:
        ``(q, P)`` ranks sorted ascending per row; padding entries (``~valid``) hold ``G``.
    """
    n_gallery = scores.shape[1]
    if scores.device.type == "cpu" and _CPU_PATH:
        ranks, too_many_ties = _ranks_cpu(scores, columns, valid, workspace)
    else:
        ranks, too_many_ties = _ranks_torch(scores, columns, valid)
    full_rows = too_many_ties.nonzero().squeeze(1)
    if len(full_rows):
        relevant = _sorted_relevance(scores[full_rows], query_labels[full_rows], gallery_labels)
        row, rank0 = relevant.nonzero(as_tuple=True)  # row-major: hits of a row in rank order
        counts = valid[full_rows].sum(dim=1)
        hit = torch.arange(len(row), device=row.device) - (torch.cumsum(counts, 0) - counts)[row]
        exact = torch.full((len(full_rows), ranks.shape[1]), n_gallery, dtype=torch.int64,
                           device=ranks.device)
        exact[row, hit] = rank0
        ranks[full_rows] = exact
    return ranks


def _envelope(precision: torch.Tensor) -> torch.Tensor:
    """Running maximum of each row taken from the right (numpy's reversed views on the CPU)."""
    if precision.device.type == "cpu":
        values = precision.numpy()
        out = np.empty_like(values)
        np.maximum.accumulate(values[:, ::-1], axis=1, out=out[:, ::-1])
        return torch.from_numpy(out)
    return precision.flip(1).cummax(dim=1).values.flip(1)


def _ranking_metrics(
    scores: torch.Tensor,
    query_labels: torch.Tensor,
    gallery_labels: torch.Tensor,
    columns: torch.Tensor,
    valid: torch.Tensor,
    convention: Convention,
    workspace: dict | None = None,
) -> dict[str, torch.Tensor]:
    """Per-query metrics of one chunk of queries.

    Precision changes direction only at hits, so the precision envelope at the j-th hit is the
    maximum precision over hits j, j+1, ...: all the work after ranking is on ``(q, P)``
    matrices of the relevant items, not on ``(q, G)``.

    Args:
        scores: ``(q, G)`` similarity of each query to each gallery item.
        query_labels: ``(q,)`` class ids.
        gallery_labels: ``(G,)`` class ids.
        columns, valid: ``(q, P)`` relevant gallery items per query (see
            :func:`_positive_ranks`); every query has at least one.
        convention: How to read each metric (:data:`CONVENTIONS`).
        workspace: buffers reused from chunk to chunk.

    Returns:
        Mapping from metric key to a ``(q,)`` float64 tensor.
    """
    n_gallery = scores.shape[1]
    ranks = _positive_ranks(scores, query_labels, gallery_labels, columns, valid, workspace)
    hit = torch.arange(1, ranks.shape[1] + 1, dtype=torch.float64, device=ranks.device)
    precision = hit / (ranks + 1).to(torch.float64)  # at the j-th hit: j / (its rank + 1)
    n_rel = valid.sum(dim=1).to(torch.float64)

    def average(prec: torch.Tensor, in_list: torch.Tensor, denom: torch.Tensor) -> torch.Tensor:
        prec = torch.where(in_list, prec, 0.0)
        if convention.ap == "interpolated":
            # Precision envelope: the running maximum of precision taken from the right.
            prec = torch.where(in_list, _envelope(prec), 0.0)
        # A fixed-order sum: the same bits whatever the SIMD width (and so the chunk or CPU).
        return _fixed_order_row_sums(prec) / denom

    top = min(_TOP, n_gallery)
    # Ranks ascend along a row, so the hits inside the top list are among its first ``top``.
    head = slice(0, min(top, ranks.shape[1]))
    in_top = ranks[:, head] < top
    if convention.top_denominator == "min(K,R)":
        top_denominator = torch.clamp(n_rel, max=float(_TOP))
    else:  # the hits found in the top list; a query without any scores 0
        top_denominator = in_top.sum(dim=1).clamp(min=1).to(torch.float64)
    out = {
        "mAP@all": average(precision, valid, n_rel),
        "mAP@200": average(precision[:, head], in_top, top_denominator),
    }
    for k in _PRECISION_KS:
        if convention.precision == "hits/K":
            kk = min(k, n_gallery)
            # Divided by a tensor: CUDA divides by a Python number as a product with its inverse.
            out[f"P@{k}"] = ((ranks[:, head] < kk).sum(dim=1).to(torch.float64)
                             / torch.tensor(float(kk), dtype=torch.float64, device=ranks.device))
        elif convention.precision == "hits@min(K,R)":  # R <= G: the list is in the gallery
            m = torch.clamp(n_rel, max=float(k))
            out[f"P@{k}"] = (ranks[:, :k] < m[:, None]).sum(dim=1).to(torch.float64) / m
        else:  # "relevant@K+1": the item at 0-based rank K (none when the gallery is shorter);
            # padding entries hold G, which equals K when the gallery has exactly K items.
            at_k = (ranks[:, :k + 1] == k) & valid[:, :k + 1]
            out[f"P@{k}"] = at_k.any(dim=1).to(torch.float64)
    return out


def _evaluate_chunks(
    score_chunks: Iterator[tuple[slice, torch.Tensor]],
    query_labels: torch.Tensor,
    gallery_labels: torch.Tensor,
    convention: Convention,
    per_query: bool,
) -> dict:
    device = gallery_labels.device
    classes, counts = torch.unique(gallery_labels, return_counts=True)
    # Gallery indices grouped by class (ascending within a class): class k owns
    # by_class[starts[k] : starts[k] + counts[k]].
    by_class = torch.argsort(gallery_labels, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    # Every query's values (NaN where excluded); the mean over the scored ones is one correctly
    # rounded sum at the end (math.fsum), so it does not depend on how the queries were chunked.
    per_query_values = {key: [] for key in METRIC_KEYS}
    workspace: dict = {}
    n_used = 0
    for rows, scores in score_chunks:
        labels = query_labels[rows]
        # Number of relevant gallery items per query (0 when its class is absent).
        pos = torch.searchsorted(classes, labels).clamp(max=len(classes) - 1)
        n_relevant = torch.where(classes[pos] == labels, counts[pos], torch.zeros_like(pos))
        keep = n_relevant > 0
        values = {key: torch.full((len(labels),), float("nan"), dtype=torch.float64,
                                  device=device) for key in METRIC_KEYS}
        if keep.any():
            n_kept = n_relevant[keep]
            slot = torch.arange(int(n_kept.max()), device=device)
            valid = slot[None, :] < n_kept[:, None]
            columns = by_class[torch.where(valid, starts[pos[keep]][:, None] + slot, 0)]
            kept = (scores, labels) if bool(keep.all()) else (scores[keep], labels[keep])
            metrics = _ranking_metrics(*kept, gallery_labels, columns, valid, convention,
                                       workspace)
            for key in METRIC_KEYS:
                values[key][keep] = metrics[key]
            n_used += int(keep.sum())
        for key in METRIC_KEYS:
            per_query_values[key].append(values[key].cpu())
    every = {key: torch.cat(per_query_values[key]).numpy() for key in METRIC_KEYS}
    n_queries = len(query_labels)
    result: dict = {
        key: (math.fsum(v[~np.isnan(v)].tolist()) / n_used if n_used else 0.0)
        for key, v in every.items()
    }
    result.update(
        n_queries=n_queries,
        n_used=n_used,
        n_excluded=n_queries - n_used,
        n_gallery=len(gallery_labels),
        ap=convention.ap,
        convention=convention.name,
    )
    if per_query:
        result["per_query"] = every
    return result


def _chunk_rows(n: int, chunk_size: int) -> Iterator[slice]:
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    for start in range(0, n, chunk_size):
        yield slice(start, min(start + chunk_size, n))


def _default_chunk_size(n_gallery: int) -> int:
    # About 16M score entries per chunk: ~0.5 GB of working memory (scores, int64 sort keys).
    return max(1, min(4096, (16 * 1024 * 1024) // max(n_gallery, 1)))


def evaluate_retrieval(
    query_features,
    query_labels,
    gallery_features,
    gallery_labels,
    *,
    ap: APConvention | None = None,
    convention: str | None = None,
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
    per_query: bool = False,
    progress: Callable[[Iterator], Iterator] | None = None,
) -> dict:
    """Retrieval metrics of query features against gallery features, by cosine similarity.

    Features are L2-normalised here and scored as :func:`cosine_scores` does, chunk by chunk of
    queries on ``device`` (default: the device of ``query_features`` when it is a tensor, else the
    CPU), so the full ``(Q, G)`` score matrix never exists at once. The result does not depend on
    ``chunk_size``, the thread count or the CPU (see the module docstring).

    Args:
        query_features: ``(Q, D)`` numpy array or tensor (sketch embeddings).
        query_labels: ``(Q,)`` integer class ids.
        gallery_features: ``(G, D)`` numpy array or tensor (photo embeddings).
        gallery_labels: ``(G,)`` integer class ids.
        ap: ``"interpolated"`` (VOC-style, the default) or ``"sklearn"`` (non-interpolated):
            the ``"ama"`` or the ``"sklearn"`` convention.
        convention: A name in :data:`CONVENTIONS` (default ``"ama"``, the release's), for
            numbers comparable with another code base's; it sets the AP as well.
        chunk_size: queries per chunk; default keeps about 16M scores per chunk.
        device: where to compute.
        per_query: also return ``result["per_query"][key]``, a ``(Q,)`` array (NaN for
            excluded queries).
        progress: optional wrapper for the chunk iterator, e.g. ``tqdm.tqdm``.

    Returns:
        ``{"mAP@all", "mAP@200", "P@100", "P@200"}`` as floats in [0, 1], plus ``n_queries``,
        ``n_used``, ``n_excluded`` (queries whose class has no gallery item), ``n_gallery``,
        ``ap`` and ``convention`` (what was used).

    Raises:
        ValueError: on mismatched dimensions, label arrays of the wrong length, an empty gallery
            or query set, or non-finite features.
    """
    conv = _resolve_convention(ap, convention)
    if device is None:
        device = query_features.device if isinstance(query_features, torch.Tensor) else "cpu"
    q = _as_tensor(query_features, "query_features", device=device)
    g = _as_tensor(gallery_features, "gallery_features", device=device)
    for name, t in (("query_features", q), ("gallery_features", g)):
        if t.ndim != 2:
            raise ValueError(f"{name} must be two-dimensional (n, dim), got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be floating point, got {t.dtype}")
    if q.shape[1] != g.shape[1]:
        raise ValueError(
            f"feature dimensions differ: query_features has dim {q.shape[1]}, "
            f"gallery_features has dim {g.shape[1]}"
        )
    if g.shape[0] == 0:
        raise ValueError("the gallery is empty: gallery_features has no rows")
    if q.shape[0] == 0:
        raise ValueError("there are no queries: query_features has no rows")
    for name, t in (("query_features", q), ("gallery_features", g)):
        # One reduction instead of a full boolean mask; the exact check runs only when the sum
        # is not finite (a NaN/inf entry, or an overflow of large finite values).
        if not torch.isfinite(t.sum()) and not torch.isfinite(t).all():
            bad = int((~torch.isfinite(t)).any(dim=1).sum())
            raise ValueError(f"{name} has non-finite values (NaN or inf) in {bad} rows")
    ql = _check_labels(query_labels, q.shape[0], "query_labels", "query_features", device)
    gl = _check_labels(gallery_labels, g.shape[0], "gallery_labels", "gallery_features", device)
    grid_device = _grid_device(q.device)
    q, g = q.to(grid_device), grid_features(g.to(grid_device))
    ql, gl = ql.to(grid_device), gl.to(grid_device)
    chunk_size = chunk_size or _default_chunk_size(g.shape[0])
    rows = _chunk_rows(q.shape[0], chunk_size)
    if progress is not None:
        rows = progress(list(rows))
    return _evaluate_chunks(_score_chunks(q, g, rows, chunk_size), ql, gl, conv, per_query)


def _score_chunks(q: torch.Tensor, g_grid: torch.Tensor, rows, chunk_size: int):
    """``(rows, scores of q[rows] against g)`` chunk by chunk, in reused buffers.

    ``q`` holds the query features as given (a chunk's grid is made when it is scored: the grid
    is per row, so this changes nothing but memory); ``g_grid`` is :func:`grid_features`. The
    scores are :func:`cosine_scores`'s, so they do not depend on ``chunk_size``.
    """
    shape = (min(chunk_size, len(q)), len(g_grid))
    buffer = torch.empty(shape, dtype=torch.float32, device=g_grid.device)
    work = torch.empty(shape, dtype=torch.float64, device=g_grid.device)
    g_t = g_grid.T
    for r in rows:
        n = r.stop - r.start
        yield r, _grid_scores(grid_features(q[r]), g_t, out=buffer[:n], work=work[:n])


def evaluate_scores(
    scores,
    query_labels,
    gallery_labels,
    *,
    ap: APConvention | None = None,
    convention: str | None = None,
    chunk_size: int | None = None,
    per_query: bool = False,
) -> dict:
    """Retrieval metrics from a precomputed ``(Q, G)`` score matrix (higher = more similar).

    Same conventions and return value as :func:`evaluate_retrieval`; use it with your own
    similarities (e.g. a re-ranking). Computation happens on the device of ``scores``.

    Raises:
        ValueError: on a score matrix that is not 2-D, label arrays of the wrong length, an empty
            gallery or non-finite scores.
    """
    conv = _resolve_convention(ap, convention)
    s = _as_tensor(scores, "scores")
    if s.ndim != 2:
        raise ValueError(f"scores must be a (queries, gallery) matrix, got shape {tuple(s.shape)}")
    if s.shape[1] == 0:
        raise ValueError("the gallery is empty: scores has no columns")
    if s.shape[0] == 0:
        raise ValueError("there are no queries: scores has no rows")
    if not s.is_floating_point():
        s = s.to(torch.float64)
    elif s.dtype in (torch.float16, torch.bfloat16):
        s = s.float()  # exact widening: the same order and the same ties
    if not torch.isfinite(s.sum()) and not torch.isfinite(s).all():
        raise ValueError("scores has non-finite values (NaN or inf)")
    ql = _check_labels(query_labels, s.shape[0], "query_labels", "scores", s.device)
    gl = _check_labels(gallery_labels, s.shape[1], "gallery_labels", "scores' columns", s.device)
    chunk_size = chunk_size or _default_chunk_size(s.shape[1])
    chunks = ((r, s[r]) for r in _chunk_rows(s.shape[0], chunk_size))
    return _evaluate_chunks(chunks, ql, gl, conv, per_query)


def average_precision(relevance, *, ap: APConvention = "interpolated", n_relevant=None) -> float:
    """AP of one ranked list given as a 0/1 relevance sequence (best-ranked first).

    A small helper for teaching and hand checks. ``n_relevant`` (default: the number of ones in
    ``relevance``) is the recall denominator — pass ``min(200, positives)`` for AP@200.
    """
    _check_ap(ap)
    rel = np.asarray(relevance, dtype=np.float64)
    total = rel.sum() if n_relevant is None else float(n_relevant)
    if total <= 0:
        raise ValueError("average precision is undefined for a list with no relevant item")
    precision = np.cumsum(rel) / np.arange(1, len(rel) + 1)
    if ap == "interpolated":
        precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float((precision * rel).sum() / total)


def _stable_top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best columns of each row, ties broken by column index like the metrics' ranking.

    ``torch.topk`` picks among equal scores in no documented order; here every column scoring
    above the row's k-th best score is taken, then the lowest-indexed columns that equal it.
    """
    values = scores.topk(k, dim=1).values
    kth = values[:, -1:]
    above = scores > kth
    tied = scores == kth
    need = k - above.sum(dim=1, keepdim=True)
    chosen = above | tied
    crowded = (tied.sum(dim=1, keepdim=True) > need).squeeze(1).nonzero().squeeze(1)
    if len(crowded):  # more items tie with the k-th score than fit: keep the first ones
        first = tied[crowded] & (tied[crowded].cumsum(dim=1) <= need[crowded])
        chosen[crowded] = above[crowded] | first
    index = chosen.nonzero()[:, 1].view(len(scores), k)  # row-major: ascending column index
    picked = scores.gather(1, index)
    order = torch.sort(-picked, dim=1, stable=True).indices  # best first, ties by column index
    return picked.gather(1, order), index.gather(1, order)


def rescore_candidates(query_features, gallery_features, candidates
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Each query's candidate gallery items, scored as :func:`cosine_scores` does and ranked.

    For approximate search: the index proposes ``candidates`` (its own float32 scores and tie
    order differ from machine to machine); this gives them amalib's exact scores and orders
    them best first, ties by gallery index, so that the reported lists agree with :func:`top_k`
    wherever the candidates hold the true top k.

    Args:
        query_features: ``(Q, D)``.
        gallery_features: ``(G, D)``.
        candidates: ``(Q, k)`` gallery indices; ``-1`` marks a missing candidate.

    Returns:
        ``(indices, scores)``: ``(Q, k)`` int64 and float32 numpy arrays, best first; missing
        candidates last, with index ``-1`` and score ``-inf``.
    """
    q = _as_tensor(query_features, "query_features", device="cpu")
    g = _as_tensor(gallery_features, "gallery_features", device="cpu")
    cand = np.asarray(candidates, dtype=np.int64)
    _check_pair(q, g)
    if cand.ndim != 2 or cand.shape[0] != q.shape[0]:
        raise ValueError(f"candidates must be (queries, k) = ({q.shape[0]}, k), got {cand.shape}")
    missing = cand < 0
    scores = np.empty(cand.shape, dtype=np.float32)
    per_chunk = max(1, (4 * 1024 * 1024) // max(1, cand.shape[1] * q.shape[1]))  # 32 MB of rows
    for start in range(0, len(cand), per_chunk):
        part = slice(start, start + per_chunk)
        picked = torch.from_numpy(np.where(missing[part], 0, cand[part])).reshape(-1)
        rows = grid_features(g[picked]).reshape(len(picked) // cand.shape[1], cand.shape[1], -1)
        # (q, 1, D) @ (q, D, k): exact integer products, rounded once, as in cosine_scores.
        scores[part] = _grid_scores(grid_features(q[part])[:, None, :],
                                    rows.transpose(1, 2))[:, 0].numpy()
    scores[missing] = -np.inf
    # Best first, ties by gallery index, missing candidates last.
    by_index = np.argsort(np.where(missing, np.iinfo(np.int64).max, cand), axis=1, kind="stable")
    cand, scores = np.take_along_axis(cand, by_index, 1), np.take_along_axis(scores, by_index, 1)
    by_score = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(cand, by_score, 1), np.take_along_axis(scores, by_score, 1)


def top_k(query_features, gallery_features, k: int = 8, *, chunk_size: int | None = None,
          device: str | torch.device | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine scores of the ``k`` best gallery items for each query.

    Features are scored chunk by chunk of queries with :func:`cosine_scores`'s exact scores, as in
    :func:`evaluate_retrieval`; of equally scored items the one listed first in the gallery ranks
    first, so the lists agree with the rankings the metrics score, and they are the same whatever
    ``chunk_size``, the thread count or the CPU.

    Args:
        query_features: ``(Q, D)`` numpy array or tensor.
        gallery_features: ``(G, D)``.
        k: List length; a gallery smaller than ``k`` gives lists of ``G`` items.
        chunk_size: Queries per chunk (default: about 16M scores per chunk).
        device: Where to compute (default: the device of ``query_features``, else the CPU).

    Returns:
        ``(indices, scores)``: ``(Q, min(k, G))`` int64 and float32 numpy arrays, best first.

    Raises:
        ValueError: ``k < 1``, or the two feature sets differ in dimension.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if device is None:
        device = query_features.device if isinstance(query_features, torch.Tensor) else "cpu"
    q = _as_tensor(query_features, "query_features", device=device)
    g = _as_tensor(gallery_features, "gallery_features", device=device)
    _check_pair(q, g)
    for name, t in (("query_features", q), ("gallery_features", g)):
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} has non-finite values (NaN or inf)")
    grid_device = _grid_device(q.device)
    return top_k_of_grid(q.to(grid_device), grid_features(g.to(grid_device)), k,
                         chunk_size=chunk_size)


def top_k_of_grid(query_features: torch.Tensor, gallery_grid: torch.Tensor, k: int, *,
                  chunk_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` against a gallery already put on the grid (:func:`grid_features`).

    For a gallery searched again and again (a served index): its grid is made once. Queries are
    finite ``(Q, D)`` tensors on the grid's device; no checks are made here.
    """
    k = min(k, len(gallery_grid))
    chunk_size = chunk_size or _default_chunk_size(len(gallery_grid))
    indices = np.empty((len(query_features), k), dtype=np.int64)
    values = np.empty((len(query_features), k), dtype=np.float32)
    chunks = _chunk_rows(len(query_features), chunk_size)
    for rows, scores in _score_chunks(query_features, gallery_grid, chunks, chunk_size):
        s, i = _stable_top_k(scores, k)
        values[rows], indices[rows] = s.cpu().numpy(), i.cpu().numpy()
    return indices, values


def precision_recall_curve(query_features, query_labels, gallery_features, gallery_labels,
                           n_points: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """Mean interpolated precision at ``n_points`` recall levels over the queries (11-point style).

    Each query's ranking is the metrics' (:func:`cosine_scores`, ties by gallery order); its
    interpolated precision at recall ``r`` is the precision envelope at the first rank whose
    recall reaches ``r``. Queries without a relevant gallery item are left out. For plots
    (:func:`amalib.viz.retrieval.plot_precision_recall`); it ranks the whole gallery per query.

    Returns:
        ``(recall_levels, mean_precision)``, both ``(n_points,)``.
    """
    q = _as_tensor(query_features, "query_features", device="cpu")
    g = grid_features(_as_tensor(gallery_features, "gallery_features", device="cpu"))
    ql = _as_tensor(query_labels, "query_labels").to(torch.int64)
    gl = _as_tensor(gallery_labels, "gallery_labels").to(torch.int64)
    levels = np.linspace(0, 1, n_points)
    curves = []
    for rows, scores in _score_chunks(q, g, _chunk_rows(len(q), 256), 256):
        order = torch.sort(-scores, dim=1, stable=True).indices
        rel = (gl[order] == ql[rows, None]).double()
        hits = rel.cumsum(1)
        n_pos = rel.sum(1, keepdim=True)
        keep = n_pos[:, 0] > 0
        precision = hits / torch.arange(1, g.shape[0] + 1, dtype=torch.float64)
        recall = hits / n_pos.clamp_min(1)
        envelope = precision.flip(1).cummax(1).values.flip(1)
        for p, r in zip(envelope[keep].numpy(), recall[keep].numpy()):
            pos = np.searchsorted(r, levels, side="left").clip(max=len(r) - 1)
            curves.append(p[pos])
    return levels, np.mean(curves, axis=0)


def _expected_plain_ap(n_gallery: int, n_relevant: int, top: int | None = None) -> float:
    """Exact expectation of non-interpolated AP (or AP@top) of a uniformly random ranking.

    With ``G`` items, ``R`` relevant, ``rel_k`` the relevance at rank ``k`` and ``K`` the list
    length: ``E[rel_k · #hits in 1..k] = R/G + (k - 1) R(R - 1) / (G(G - 1))``, so
    ``E[AP@K] = R / min(K, R) · (H_K / G + (R - 1)(K - H_K) / (G(G - 1)))`` with ``H_K`` the
    K-th harmonic number (``K = G``: Bestgen, 2015).
    """
    g, r = n_gallery, n_relevant
    k = g if top is None else min(top, g)
    h = float(np.sum(1.0 / np.arange(1, k + 1)))
    pair = (r - 1) * (k - h) / (g * (g - 1)) if g > 1 else 0.0
    return r / min(k, r) * (h / g + pair)


def _sampled_interpolated_ap(n_gallery: int, n_relevant: int, n_samples: int,
                             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Interpolated AP@all and AP@200 of ``n_samples`` uniformly random rankings."""
    g, r = n_gallery, n_relevant
    top = min(_TOP, g)
    ap_all, ap_top = [], []
    chunk = max(1, min(n_samples, (4 * 1024 * 1024) // max(g, 1)))
    for start in range(0, n_samples, chunk):
        n = min(chunk, n_samples - start)
        # The 0-based ranks of the R relevant items: R distinct positions out of G, ascending.
        ranks = np.sort(np.argsort(rng.random((n, g)), axis=1)[:, :r], axis=1)
        precision = np.arange(1, r + 1) / (ranks + 1.0)
        envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
        ap_all.append(envelope.mean(axis=1))
        in_top = ranks < top
        head = np.where(in_top, precision, 0.0)
        head = np.where(in_top, np.maximum.accumulate(head[:, ::-1], axis=1)[:, ::-1], 0.0)
        ap_top.append(head.sum(axis=1) / min(_TOP, r))
    return np.concatenate(ap_all), np.concatenate(ap_top)


def chance_levels(query_labels, gallery_labels, *, ap: APConvention = "interpolated",
                  n_samples: int = 2000, seed: int = 0) -> dict:
    """Expected value of every metric when the gallery is ranked at random.

    The reference a results table must be read against: each metric has its own. For a query
    whose class has ``R`` of the ``G`` gallery items (queries without any are excluded, as in
    :func:`evaluate_retrieval`), under a uniformly random ranking:

    * ``P@K``: ``R / G`` exactly (the class share);
    * non-interpolated ``mAP@all`` / ``mAP@200`` (``ap="sklearn"``): exact, see
      :func:`_expected_plain_ap` — slightly above the class share for ``mAP@all`` and far below
      it for ``mAP@200`` (most relevant items fall outside the top 200, but the recall
      denominator still counts ``min(200, R)`` of them);
    * interpolated ``mAP@all`` / ``mAP@200`` (``ap="interpolated"``, the default): the precision
      envelope has no closed-form expectation, so it is the mean over ``n_samples`` random
      rankings per distinct ``R`` (seeded: the same numbers every call); ``stderr`` gives the
      standard error of each such estimate.

    The mean is over queries, like the metrics (not class-balanced).

    Args:
        query_labels: ``(Q,)`` class ids of the queries.
        gallery_labels: ``(G,)`` class ids of the gallery.
        ap: AP convention, as in :func:`evaluate_retrieval`.
        n_samples: Random rankings per distinct number of relevant items (interpolated AP only).
        seed: Seed of those rankings.

    Returns:
        ``{"mAP@all", "mAP@200", "P@100", "P@200"}`` as floats, plus ``ap``, ``n_queries`` and
        ``stderr`` (``{metric: standard error}``, 0 for the exact ones).
    """
    _check_ap(ap)
    q = np.asarray(query_labels).astype(np.int64).ravel()
    g = np.asarray(gallery_labels).astype(np.int64).ravel()
    n_gallery = len(g)
    if n_gallery == 0:
        raise ValueError("the gallery is empty")
    classes, counts = np.unique(g, return_counts=True)
    per_class = dict(zip(classes.tolist(), counts.tolist()))
    n_rel = np.array([per_class.get(c, 0) for c in q.tolist()])
    n_rel = n_rel[n_rel > 0]
    if len(n_rel) == 0:
        raise ValueError("no query has a relevant item in the gallery")
    rng = np.random.default_rng(seed)
    by_r: dict[int, dict[str, tuple[float, float]]] = {}
    for r in np.unique(n_rel).tolist():
        if ap == "sklearn":
            by_r[r] = {"mAP@all": (_expected_plain_ap(n_gallery, r), 0.0),
                       "mAP@200": (_expected_plain_ap(n_gallery, r, _TOP), 0.0)}
        else:
            ap_all, ap_top = _sampled_interpolated_ap(n_gallery, r, n_samples, rng)
            se = 1.0 / np.sqrt(n_samples)
            by_r[r] = {"mAP@all": (float(ap_all.mean()), float(ap_all.std(ddof=1) * se)),
                       "mAP@200": (float(ap_top.mean()), float(ap_top.std(ddof=1) * se))}
        for k in _PRECISION_KS:
            by_r[r][f"P@{k}"] = (r / n_gallery, 0.0)
    weights = {r: float(np.mean(n_rel == r)) for r in by_r}
    out: dict = {}
    stderr: dict[str, float] = {}
    for key in METRIC_KEYS:
        out[key] = float(sum(weights[r] * by_r[r][key][0] for r in by_r))
        # Independent estimates per R: the variances add with the squared weights.
        stderr[key] = float(np.sqrt(sum((weights[r] * by_r[r][key][1]) ** 2 for r in by_r)))
    out.update(ap=ap, n_queries=int(len(n_rel)), stderr=stderr)
    return out
