"""Multi-granularity k-means of teacher features (AMA's cluster pseudo-labels).

Every epoch after the warm-up, AMA clusters the teacher CLS features of a domain's whole training
set at several granularities (250, 500 and 1000 clusters on the real benchmarks) and uses the
assignments as pseudo-labels for the cluster contrastive loss and the centroids as prototypes for
the confidence filter and the mutual alignment loss (Yin et al., "Asymmetric Mutual Alignment for
Unsupervised Zero-Shot Sketch-Based Image Retrieval", AAAI 2024; see ``docs/method.md``, losses
2-3).

The release runs faiss k-means with 20 iterations, 5 restarts and at most 2000 points per
centroid; those are the defaults here. Importing this module does not import faiss: it is
imported inside :func:`cluster_features` (it is an optional dependency, ``amalib[full]``).

Conventions:

* Two clustering spaces (``space``, the config's ``loss.cluster.space``):
  ``"normalised_spherical"`` (amalib's default) L2-normalises the features and runs spherical
  k-means (centroids re-normalised after every update), assigning by cosine;
  ``"raw_euclidean"`` (the release's ``run_kmeans``) runs plain Euclidean k-means on the features
  as given (raw CLS features), assigns each sample to its nearest *raw* centroid, and only then
  normalises the centroids (``centroids_normed``). Either way the returned centroids are
  L2-normalised float32, ready as prototypes for features compared by cosine.
* ``K > N`` is clamped to ``N`` with a warning.
* Empty clusters: during training faiss (and :func:`kmeans_torch`) re-seed an empty centroid by
  splitting a large cluster. When k-means is trained on a subsample (``N > K *
  max_points_per_centroid``) a centroid can still end up with no member after the final assignment
  of all ``N`` points. It is kept (it is a valid prototype); ``assignments`` always index rows of
  ``centroids`` (values in ``[0, K)``) and :attr:`ClusterResult.n_empty` counts such centroids.
* Deterministic for a fixed ``seed`` (faiss: ``Clustering.seed``; torch: a seeded generator).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["CLUSTER_SPACES", "ClusterResult", "cluster_features", "kmeans_torch"]

#: Values of ``space`` (config ``loss.cluster.space``); see the module docstring.
CLUSTER_SPACES = ("normalised_spherical", "raw_euclidean")


@dataclass
class ClusterResult:
    """K-means result at one granularity.

    Attributes:
        centroids: ``(K, D)`` float32, L2-normalised, on CPU.
        assignments: ``(N,)`` int64 on CPU; ``assignments[n]`` is the row of ``centroids``
            nearest to sample ``n`` (values in ``[0, K)``); for ``raw_euclidean``, nearest to
            sample ``n`` before the centroids were normalised.
        n_clusters: ``K`` actually used (after clamping to ``N``).
        inertia: sum over all ``N`` samples of the squared L2 distance between the normalised
            feature and its assigned centroid (``2 - 2 cos`` for unit vectors); for
            ``raw_euclidean``, between the raw feature and its raw centroid. Lower is better.
        n_empty: number of centroids that no sample is assigned to (see the module docstring).
    """

    centroids: torch.Tensor
    assignments: torch.Tensor
    n_clusters: int
    inertia: float
    n_empty: int = 0


def _to_float_tensor(features: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(features, np.ndarray):
        features = torch.from_numpy(features)
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"features must be a numpy array or a torch tensor, got {type(features)}")
    if features.ndim != 2:
        raise ValueError(f"features must have shape (N, D), got {tuple(features.shape)}")
    if features.shape[0] == 0:
        raise ValueError("cannot cluster zero samples")
    return features.detach().float()


def _clamp_k(k: int, n: int, stacklevel: int) -> int:
    k = int(k)
    if k < 1:
        raise ValueError(f"number of clusters must be >= 1, got {k}")
    if k > n:
        warnings.warn(
            f"requested {k} clusters but there are only {n} samples; using {n} clusters",
            stacklevel=stacklevel + 1,
        )
        return n
    return k


def _assign(
    x: torch.Tensor, centroids: torch.Tensor, chunk: int = 8192
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid (L2) of each row of ``x``; returns ``(assignments, squared distances)``."""
    c_sq = (centroids * centroids).sum(1)
    assignments, distances = [], []
    for start in range(0, x.shape[0], chunk):
        xb = x[start : start + chunk]
        # ||x - c||^2 = ||x||^2 + ||c||^2 - 2 x.c ; argmin over c does not need ||x||^2.
        scores = c_sq[None, :] - 2.0 * (xb @ centroids.T)
        best, idx = scores.min(dim=1)
        assignments.append(idx)
        distances.append((best + (xb * xb).sum(1)).clamp_min(0.0))
    return torch.cat(assignments), torch.cat(distances)


def kmeans_torch(
    features: torch.Tensor,
    n_clusters: int,
    *,
    n_iter: int = 20,
    n_redo: int = 1,
    max_points_per_centroid: int = 2000,
    seed: int = 0,
    spherical: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Plain Lloyd k-means in torch, on the device of ``features`` (fallback without faiss-gpu).

    Mirrors faiss' procedure: optional subsampling to ``n_clusters * max_points_per_centroid``
    training points, initialisation from distinct random training points, ``n_iter`` Lloyd
    iterations with centroids re-normalised after each update when ``spherical``, empty clusters
    re-seeded by splitting the largest cluster (the centroid is copied with a small symmetric
    perturbation, as faiss does), ``n_redo`` restarts keeping the lowest training inertia.

    Args:
        features: ``(N, D)`` float tensor, used as given (normalise it first for spherical
            k-means; :func:`cluster_features` does).
        n_clusters: ``K``, at most ``N``.
        n_iter: Lloyd iterations per restart.
        n_redo: number of restarts.
        max_points_per_centroid: cap on training points per centroid (subsampling).
        seed: seed of the generator used for subsampling, initialisation and splits.
        spherical: L2-normalise centroids after each update.

    Returns:
        ``(centroids (K, D), assignments (N,) int64, inertia)`` on the device of ``features``;
        assignments and inertia are for all ``N`` points.
    """
    x = features.float()
    n, d = x.shape
    k = int(n_clusters)
    if not 1 <= k <= n:
        raise ValueError(f"n_clusters must be in [1, {n}], got {k}")
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    device = x.device

    n_train = min(n, k * max_points_per_centroid)
    if n_train < n:
        train_idx = torch.randperm(n, generator=generator)[:n_train].to(device)
        x_train = x[train_idx]
    else:
        x_train = x

    best_centroids, best_obj = None, math.inf
    for _ in range(max(1, int(n_redo))):
        init = torch.randperm(n_train, generator=generator)[:k].to(device)
        centroids = x_train[init].clone()
        for _ in range(max(1, int(n_iter))):
            assign, _ = _assign(x_train, centroids)
            sums = torch.zeros_like(centroids).index_add_(0, assign, x_train)
            counts = torch.bincount(assign, minlength=k).to(x_train.dtype)
            new_centroids = sums / counts.clamp_min(1.0)[:, None]
            empty = torch.nonzero(counts == 0).flatten().tolist()
            if empty:
                counts_cpu = counts.cpu()
                for e in empty:
                    # Split the currently largest cluster between itself and the empty slot.
                    big = int(torch.argmax(counts_cpu))
                    noise = 1.0 + 1.0 / 1024 * (
                        2 * torch.rand(d, generator=generator).to(device) - 1
                    )
                    base = new_centroids[big].clone()
                    new_centroids[e] = base * noise
                    new_centroids[big] = base / noise
                    counts_cpu[e] = counts_cpu[big] / 2
                    counts_cpu[big] = counts_cpu[big] - counts_cpu[e]
            if spherical:
                new_centroids = F.normalize(new_centroids, dim=1)
            centroids = new_centroids
        _, dist = _assign(x_train, centroids)
        obj = float(dist.sum())
        if obj < best_obj:
            best_obj, best_centroids = obj, centroids
    assert best_centroids is not None
    assignments, distances = _assign(x, best_centroids)
    return best_centroids, assignments, float(distances.sum())


def _kmeans_faiss(
    x: np.ndarray,
    k: int,
    *,
    n_iter: int,
    n_redo: int,
    max_points_per_centroid: int,
    seed: int,
    spherical: bool,
    use_gpu: bool,
    verbose: bool,
) -> np.ndarray:
    import faiss

    d = x.shape[1]
    kmeans = faiss.Kmeans(
        d,
        k,
        niter=int(n_iter),
        nredo=int(n_redo),
        max_points_per_centroid=int(max_points_per_centroid),
        min_points_per_centroid=1,  # no "too few points" warning; K <= N is checked by us.
        seed=int(seed),
        spherical=spherical,
        verbose=verbose,
        gpu=use_gpu,
    )
    kmeans.train(x)
    return np.asarray(kmeans.centroids, dtype=np.float32).reshape(k, d)


def _faiss_available() -> tuple[bool, int]:
    try:
        import faiss
    except ImportError:
        return False, 0
    get_num_gpus = getattr(faiss, "get_num_gpus", None)
    return True, (int(get_num_gpus()) if get_num_gpus is not None else 0)


def cluster_features(
    features: np.ndarray | torch.Tensor,
    n_clusters: Sequence[int],
    *,
    n_iter: int = 20,
    n_redo: int = 5,
    max_points_per_centroid: int = 2000,
    seed: int = 0,
    spherical: bool = True,
    device: torch.device | str | None = None,
    verbose: bool = False,
    space: str = "normalised_spherical",
) -> list[ClusterResult]:
    """K-means of teacher features at several granularities.

    Backend: faiss on CPU (``device`` None or CPU), faiss on GPU when ``device`` is CUDA and
    faiss has GPU support, otherwise :func:`kmeans_torch` on ``device``. If faiss is not
    installed, :func:`kmeans_torch` is used with a warning. Every granularity uses the same
    ``seed``. Final assignments are computed for all ``N`` samples against the final
    (normalised) centroids, so they are consistent with ``centroids``.

    Args:
        features: ``(N, D)`` teacher features (numpy or torch, any float dtype); normalised here
            unless ``space="raw_euclidean"``.
        n_clusters: granularities, e.g. ``(250, 500, 1000)``; each ``K > N`` is clamped to ``N``
            with a warning naming both numbers.
        n_iter: k-means iterations (release: 20).
        n_redo: restarts; the run with the best objective is kept (release: 5).
        max_points_per_centroid: subsample the training set to ``K *`` this many points
            (release: 2000).
        seed: random seed (subsampling, initialisation); fixed seed → identical results.
        spherical: normalise centroids after each iteration (spherical k-means); only for
            ``space="normalised_spherical"`` (``raw_euclidean`` is plain Lloyd k-means).
        device: where to run; ``None`` means CPU/faiss.
        verbose: print faiss' progress.
        space: ``"normalised_spherical"`` (normalise the features, cluster on the sphere) or
            ``"raw_euclidean"`` (the release: Euclidean k-means of the features as given,
            assignments to the raw centroids, centroids normalised afterwards).

    Returns:
        One :class:`ClusterResult` per entry of ``n_clusters`` (same order), on CPU.
    """
    if space not in CLUSTER_SPACES:
        raise ValueError(f"space must be one of {CLUSTER_SPACES}, got {space!r}")
    raw = space == "raw_euclidean"
    x = _to_float_tensor(features)
    if raw:
        spherical = False
    else:
        x = F.normalize(x, dim=1)
    n = x.shape[0]
    ks = []
    for k in n_clusters:
        ks.append(_clamp_k(k, n, stacklevel=2))
    device = torch.device(device) if device is not None else torch.device("cpu")
    have_faiss, n_gpus = _faiss_available()
    use_faiss = have_faiss and (device.type == "cpu" or (device.type == "cuda" and n_gpus > 0))
    if not have_faiss:
        warnings.warn("faiss is not installed; using the torch k-means fallback", stacklevel=2)

    results = []
    if use_faiss:
        x_np = np.ascontiguousarray(x.cpu().numpy(), dtype=np.float32)
        for k in ks:
            centroids = _kmeans_faiss(
                x_np,
                k,
                n_iter=n_iter,
                n_redo=n_redo,
                max_points_per_centroid=max_points_per_centroid,
                seed=seed,
                spherical=spherical,
                use_gpu=device.type == "cuda",
                verbose=verbose,
            )
            centroids_t = torch.from_numpy(centroids)
            if not raw:
                centroids_t = F.normalize(centroids_t, dim=1)
            assignments, distances = _assign(x.cpu(), centroids_t)
            results.append(_make_result(F.normalize(centroids_t, dim=1), assignments,
                                        float(distances.sum())))
    else:
        x_dev = x.to(device)
        for k in ks:
            centroids, assignments, _ = kmeans_torch(
                x_dev,
                k,
                n_iter=n_iter,
                n_redo=n_redo,
                max_points_per_centroid=max_points_per_centroid,
                seed=seed,
                spherical=spherical,
            )
            if not raw:
                centroids = F.normalize(centroids, dim=1)
            assignments, distances = _assign(x_dev, centroids)
            results.append(_make_result(F.normalize(centroids, dim=1).cpu(), assignments.cpu(),
                                        float(distances.sum())))
    return results


def _make_result(
    centroids: torch.Tensor, assignments: torch.Tensor, inertia: float
) -> ClusterResult:
    k = centroids.shape[0]
    counts = torch.bincount(assignments, minlength=k)
    return ClusterResult(
        centroids=centroids.float().contiguous(),
        assignments=assignments.long().contiguous(),
        n_clusters=k,
        inertia=inertia,
        n_empty=int((counts == 0).sum()),
    )
