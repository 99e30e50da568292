"""Evaluation protocols beyond sketch→photo, and diagnostics of a ranking: pure functions of features.

* **zs** (the benchmark protocol, :func:`amalib.metrics.evaluate_retrieval`): unseen-class
  sketches query the unseen-class photos.
* **p2s** (:func:`evaluate_photo_to_sketch`): the roles swapped — unseen-class photos query the
  unseen-class sketches. Retrieval by cosine similarity is not symmetric in its metrics: the
  gallery sizes, class balance and hubs differ.
* **gzs**, generalised zero-shot SBIR (:func:`evaluate_generalized`; Liu et al., "SAKE", ICCV
  2019; Dutta & Akata, "SEM-PCYC", CVPR 2019): the gallery holds the photos of the seen *and* the
  unseen classes; the queries are still unseen-class sketches, so a seen-class photo is never
  relevant. A model that pulls sketches towards the classes it trained on ranks seen photos
  high and loses mAP against zs; :func:`evaluate_generalized` also reports how much of each top-k
  list is seen photos.
* **Per-class AP** (:func:`per_class_ap`): mean AP of each query class, hardest first.
* **Hubness** (:func:`hubness`; Radovanović, Nanopoulos & Ivanović, "Hubs in Space", JMLR 11,
  2010): ``N_k(x)``, how many queries have gallery item ``x`` in their top-k list. In a
  high-dimensional embedding a few items ("hubs") appear in the top-k lists of very many
  queries and many never appear; the distribution of ``N_k`` is then right-skewed. A retrieval
  grid whose rows all show the same photos is this, seen from one query at a time.

Every function takes features and labels (numpy arrays or tensors), never a network; ranks break
ties by gallery order as in :mod:`amalib.metrics`. Figures: :mod:`amalib.viz.protocols`;
walk-through: ``notebooks/06_retrieval_evaluation.ipynb``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from amalib.metrics import evaluate_retrieval, top_k

__all__ = [
    "PROTOCOLS",
    "evaluate_photo_to_sketch",
    "evaluate_generalized",
    "seen_offset",
    "per_class_ap",
    "HubnessReport",
    "hubness",
    "k_occurrence_skewness",
]

PROTOCOLS = ("zs", "gzs", "p2s")
_SEEN_SHARE_KS = (100, 200)


def _labels(x) -> np.ndarray:
    return (x.cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).astype(np.int64)


def _features(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))


def evaluate_photo_to_sketch(sketch_features, sketch_labels, photo_features, photo_labels,
                             **kwargs) -> dict:
    """Photo→sketch retrieval: each photo queries the sketch gallery.

    The metrics and conventions of :func:`amalib.metrics.evaluate_retrieval` (``kwargs`` go to
    it), with photos as queries and sketches as the gallery.
    """
    return evaluate_retrieval(photo_features, photo_labels, sketch_features, sketch_labels,
                              **kwargs)


def seen_offset(*unseen_labels) -> int:
    """The id added to seen-class labels so that they never equal an unseen one.

    Seen and unseen class maps both count from 0 (``cname_cid.txt`` and ``cname_cid_zero.txt``);
    in a generalised gallery the seen ids are shifted past every unseen id given.
    """
    return 1 + max((int(_labels(x).max()) for x in unseen_labels if len(x)), default=-1)


def evaluate_generalized(query_features, query_labels, unseen_photo_features,
                         unseen_photo_labels, seen_photo_features, seen_photo_labels, *,
                         ap: str | None = None, convention: str | None = None,
                         chunk_size: int | None = None, device=None,
                         per_query: bool = False) -> dict:
    """Generalised zero-shot retrieval: unseen sketches against seen + unseen photos.

    Seen-class labels are shifted by :func:`seen_offset` so that no seen photo is relevant to
    any query, whatever ids the two class maps use.

    Args:
        query_features, query_labels: ``(Q, D)``, ``(Q,)`` unseen-class sketches.
        unseen_photo_features, unseen_photo_labels: ``(U, D)``, ``(U,)`` the zs gallery.
        seen_photo_features, seen_photo_labels: ``(S, D)``, ``(S,)`` seen-class photos.
        ap, convention, chunk_size, device, per_query: as in
            :func:`amalib.metrics.evaluate_retrieval`.

    Returns:
        The metrics of :func:`~amalib.metrics.evaluate_retrieval` over the ``U + S`` gallery,
        plus ``seen_share@100`` and ``seen_share@200`` (mean over queries of the fraction of
        the top-k list that is seen-class photos; the chance level is ``S / (U + S)``),
        ``n_unseen_gallery`` and ``n_seen_gallery``.
    """
    ql, ul, sl = _labels(query_labels), _labels(unseen_photo_labels), _labels(seen_photo_labels)
    gallery = torch.cat([_features(unseen_photo_features).float(),
                         _features(seen_photo_features).float()])
    labels = np.concatenate([ul, sl + seen_offset(ql, ul)])
    result = evaluate_retrieval(query_features, ql, gallery, labels, ap=ap, convention=convention,
                                chunk_size=chunk_size, device=device, per_query=per_query)
    ranked, _ = top_k(query_features, gallery, max(_SEEN_SHARE_KS), chunk_size=chunk_size,
                      device=device)
    is_seen = ranked >= len(ul)  # the seen photos follow the unseen ones in ``gallery``
    for k in _SEEN_SHARE_KS:
        result[f"seen_share@{k}"] = float(is_seen[:, :k].mean())
    result.update(n_unseen_gallery=len(ul), n_seen_gallery=len(sl))
    return result


def per_class_ap(per_query_ap, query_labels, class_names=None) -> list[dict]:
    """Mean AP of each query class, hardest (lowest) first.

    Args:
        per_query_ap: ``(Q,)`` AP of each query, e.g. ``evaluate_retrieval(...,
            per_query=True)["per_query"]["mAP@all"]``; NaN marks an excluded query (no relevant
            gallery item) and is left out.
        query_labels: ``(Q,)`` class ids.
        class_names: Names by id, or ``None`` (the rows then name the class by its id).

    Returns:
        ``[{"class", "label", "n_queries", "AP"}, ...]`` sorted by AP ascending (ties by label).
    """
    ap = np.asarray(per_query_ap, dtype=np.float64)
    labels = _labels(query_labels)
    if ap.shape != labels.shape:
        raise ValueError(f"per_query_ap has shape {ap.shape} but query_labels {labels.shape}")
    rows = []
    for label in np.unique(labels[~np.isnan(ap)]):
        values = ap[(labels == label) & ~np.isnan(ap)]
        rows.append({"class": str(class_names[label]) if class_names is not None else str(label),
                     "label": int(label), "n_queries": len(values), "AP": float(values.mean())})
    return sorted(rows, key=lambda r: (r["AP"], r["label"]))


@dataclass
class HubnessReport:
    """The k-occurrence distribution of a gallery (see :func:`hubness`).

    Attributes:
        k: List length.
        n_queries: Number of queries.
        counts: ``(G,)`` int64, ``N_k``: how many queries list each gallery item in their top k.
        skewness: Standardised third moment of ``counts``; 0 for a symmetric distribution, large
            and positive when a few hubs take many lists (0 when every count is equal).
        never_retrieved: Share of the gallery in no top-k list ("anti-hubs").
        top_hub_share: Share of the queries whose top-k list holds the biggest hub.
        hubs: Gallery indices of the most frequent items, most frequent first (ties by index).
    """

    k: int
    n_queries: int
    counts: np.ndarray
    skewness: float
    never_retrieved: float
    top_hub_share: float
    hubs: np.ndarray

    def summary(self, n_hubs: int = 5) -> dict:
        """JSON-ready figures without the per-item counts."""
        return {"k": self.k, "n_queries": self.n_queries, "n_gallery": len(self.counts),
                "skewness": self.skewness, "never_retrieved": self.never_retrieved,
                "top_hub_share": self.top_hub_share,
                "hubs": [{"index": int(j), "count": int(self.counts[j])}
                         for j in self.hubs[:n_hubs]]}


def k_occurrence_skewness(counts) -> float:
    """``E[(N_k − μ)³] / σ³`` of the k-occurrence counts (Radovanović et al. 2010, eq. 1)."""
    n = np.asarray(counts, dtype=np.float64)
    centred = n - n.mean()
    sigma = np.sqrt((centred**2).mean())
    return float((centred**3).mean() / sigma**3) if sigma > 0 else 0.0


def hubness(query_features, gallery_features, *, k: int = 10, n_hubs: int = 10,
            chunk_size: int | None = None, device=None) -> HubnessReport:
    """How often each gallery item appears in the top-k lists of the queries.

    Args:
        query_features: ``(Q, D)`` (e.g. sketch features).
        gallery_features: ``(G, D)`` (e.g. photo features).
        k: Length of the lists counted (a gallery smaller than ``k`` gives lists of ``G``).
        n_hubs: How many of the most frequent items to name in ``hubs``.
        chunk_size, device: as in :func:`amalib.metrics.top_k`.

    Returns:
        A :class:`HubnessReport`. Without hubness every item would appear about ``k · Q / G``
        times; ``counts.sum() == Q · min(k, G)``.
    """
    ranked, _ = top_k(query_features, gallery_features, k, chunk_size=chunk_size, device=device)
    n_gallery = len(gallery_features)
    counts = np.bincount(ranked.ravel(), minlength=n_gallery).astype(np.int64)
    hubs = np.argsort(-counts, kind="stable")[:n_hubs]
    return HubnessReport(
        k=ranked.shape[1], n_queries=len(ranked), counts=counts,
        skewness=k_occurrence_skewness(counts),
        never_retrieved=float((counts == 0).mean()),
        top_hub_share=float(counts[hubs[0]] / len(ranked)) if len(ranked) else 0.0,
        hubs=hubs,
    )
