"""Tests of the multi-granularity k-means (faiss backend and the torch fallback)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from amalib.clustering import ClusterResult, cluster_features, kmeans_torch

pytest.importorskip("faiss")


def blobs(n_blobs=5, per_blob=60, dim=16, noise=0.05, seed=0):
    """Well-separated clusters on the sphere: random unit centres plus small Gaussian noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_blobs, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(n_blobs), per_blob)
    points = centres[labels] + noise * rng.normal(size=(len(labels), dim))
    perm = rng.permutation(len(labels))
    return points[perm].astype(np.float32), labels[perm], centres


def same_partition(a, b):
    """True if the two labelings define the same partition (equal up to renaming)."""
    a, b = np.asarray(a), np.asarray(b)
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def check_result(result: ClusterResult, n, dim):
    k = result.n_clusters
    assert result.centroids.shape == (k, dim) and result.centroids.dtype == torch.float32
    assert result.centroids.device.type == "cpu" and result.assignments.device.type == "cpu"
    assert result.assignments.shape == (n,) and result.assignments.dtype == torch.int64
    torch.testing.assert_close(result.centroids.norm(dim=1), torch.ones(k))
    assert int(result.assignments.min()) >= 0 and int(result.assignments.max()) < k
    counts = torch.bincount(result.assignments, minlength=k)
    assert result.n_empty == int((counts == 0).sum())


def test_recovers_known_blobs_at_several_granularities():
    points, labels, centres = blobs()
    # k-means from random initial points can settle in a local optimum (two centroids in one
    # blob, one between two blobs); enough restarts make the global one overwhelmingly likely.
    results = cluster_features(points, [5, 10], n_redo=20)
    assert [r.n_clusters for r in results] == [5, 10]
    for r in results:
        check_result(r, len(points), points.shape[1])
    assert same_partition(results[0].assignments.numpy(), labels)
    # Each recovered centroid is (almost) one of the true centres.
    cos = results[0].centroids.double() @ torch.from_numpy(centres).T
    assert (cos.max(dim=1).values > 0.99).all()
    # The finer granularity refines the coarse one: each of its clusters lies inside one blob.
    fine = results[1].assignments.numpy()
    assert all(len(set(labels[fine == c].tolist())) <= 1 for c in range(10))


def test_assignments_are_nearest_centroid_and_inertia_matches():
    points, _, _ = blobs(n_blobs=4, per_blob=30, dim=8, noise=0.3, seed=1)
    (result,) = cluster_features(torch.from_numpy(points).double(), [6], n_redo=2)
    x = F.normalize(torch.from_numpy(points), dim=1)
    dist = torch.cdist(x, result.centroids) ** 2
    assert torch.equal(result.assignments, dist.argmin(dim=1))
    assert result.inertia == pytest.approx(float(dist.min(dim=1).values.sum()), rel=1e-4)


def test_deterministic_for_a_fixed_seed():
    points, _, _ = blobs(n_blobs=6, per_blob=50, dim=12, noise=0.5, seed=2)
    first = cluster_features(points, [4, 9], n_redo=3, seed=7)
    second = cluster_features(points, [4, 9], n_redo=3, seed=7)
    for a, b in zip(first, second):
        assert torch.equal(a.centroids, b.centroids)
        assert torch.equal(a.assignments, b.assignments)
        assert a.inertia == b.inertia


def test_k_larger_than_n_is_clamped_with_a_warning():
    points, _, _ = blobs(n_blobs=2, per_blob=10, dim=4, seed=3)
    with pytest.warns(UserWarning, match=r"50 clusters.*only 20 samples"):
        (result,) = cluster_features(points, [50])
    assert result.n_clusters == 20
    check_result(result, 20, 4)


def test_empty_clusters_refer_only_to_existing_centroids():
    # 8 distinct points, each repeated 10 times, into 12 clusters: at least 4 centroids cannot
    # own a point after the final assignment (duplicates always go to the same centroid).
    rng = np.random.default_rng(4)
    distinct = rng.normal(size=(8, 6)).astype(np.float32)
    points = np.repeat(distinct, 10, axis=0)
    (result,) = cluster_features(points, [12])
    check_result(result, 80, 6)
    assert result.n_empty >= 4
    assert torch.isfinite(result.centroids).all()
    # Every distinct point still gets its own cluster (k-means splits, it does not merge here).
    assert len(set(result.assignments.tolist())) == 8

    centroids, assignments, inertia = kmeans_torch(
        F.normalize(torch.from_numpy(points), dim=1), 12, n_redo=3
    )
    assert torch.isfinite(centroids).all() and np.isfinite(inertia)
    assert int(assignments.max()) < 12 and len(set(assignments.tolist())) == 8


def test_torch_kmeans_agrees_with_faiss_on_blobs():
    points, labels, _ = blobs(n_blobs=5, per_blob=40, dim=16, seed=5)
    (faiss_result,) = cluster_features(points, [5], n_redo=20)
    x = F.normalize(torch.from_numpy(points), dim=1)
    centroids, assignments, inertia = kmeans_torch(x, 5, n_iter=20, n_redo=20, seed=0)
    assert same_partition(assignments.numpy(), faiss_result.assignments.numpy())
    assert same_partition(assignments.numpy(), labels)
    assert inertia == pytest.approx(faiss_result.inertia, rel=1e-3)
    torch.testing.assert_close(centroids.norm(dim=1), torch.ones(5))


def test_torch_kmeans_subsampling_and_determinism():
    points, labels, _ = blobs(n_blobs=4, per_blob=100, dim=8, seed=6)
    x = F.normalize(torch.from_numpy(points), dim=1)
    a = kmeans_torch(x, 4, max_points_per_centroid=20, n_redo=20, seed=1)
    b = kmeans_torch(x, 4, max_points_per_centroid=20, n_redo=20, seed=1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert same_partition(a[1].numpy(), labels)
    with pytest.raises(ValueError):
        kmeans_torch(x, 0)


def test_input_validation():
    with pytest.raises(ValueError):
        cluster_features(np.zeros((0, 4), dtype=np.float32), [2])
    with pytest.raises(ValueError):
        cluster_features(np.zeros((5,), dtype=np.float32), [2])
    with pytest.raises(ValueError):
        cluster_features(np.ones((5, 3), dtype=np.float32), [0])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device_returns_cpu_results():
    points, labels, _ = blobs(seed=7)
    (result,) = cluster_features(points, [5], device="cuda")
    check_result(result, len(points), points.shape[1])
    assert same_partition(result.assignments.numpy(), labels)


# Two groups by magnitude, not by direction: Euclidean k-means of the raw points separates
# {0, 1} from {2, 3}; on the sphere the directions (+5.7, -5.7, +16.7, +5.7 degrees) group
# differently. Assigning to the *normalised* centroids would also differ: point 0 is nearer to
# normalize((5, 1)) than to (1, 0).
HAND_POINTS = np.array([[1.0, 0.1], [1.0, -0.1], [5.0, 1.5], [5.0, 0.5]], dtype=np.float32)


def plain_euclidean_kmeans(points, k=2):
    """Exhaustive Euclidean k-means: the labelling of minimum inertia (means as centroids)."""
    import itertools

    best = None
    for labels in itertools.product(range(k), repeat=len(points)):
        labels = np.array(labels)
        if len(set(labels.tolist())) < k:
            continue
        means = np.stack([points[labels == c].mean(0) for c in range(k)])
        inertia = float(((points - means[labels]) ** 2).sum())
        if best is None or inertia < best[0]:
            best = (inertia, labels, means)
    return best


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_raw_euclidean_is_the_release_kmeans_on_a_hand_made_case(backend, monkeypatch):
    import amalib.clustering as clustering

    if backend == "torch":
        monkeypatch.setattr(clustering, "_faiss_available", lambda: (False, 0))
    inertia, labels, means = plain_euclidean_kmeans(HAND_POINTS)
    assert same_partition(labels, [0, 0, 1, 1])
    with pytest.warns(UserWarning) if backend == "torch" else _no_warning():
        (raw,) = cluster_features(HAND_POINTS, [2], n_redo=10, space="raw_euclidean")
    check_result(raw, 4, 2)
    assert same_partition(raw.assignments.numpy(), labels)
    assert raw.inertia == pytest.approx(inertia, rel=1e-5)
    # Centroids normalised only after the assignment, as the release's centroids_normed.
    for c in range(2):
        members = HAND_POINTS[raw.assignments.numpy() == c]
        want = F.normalize(torch.from_numpy(members.mean(0)), dim=0)
        torch.testing.assert_close(raw.centroids[c], want, rtol=1e-5, atol=1e-6)
    nearest_normalised = (torch.from_numpy(HAND_POINTS)[:, None] - raw.centroids[None]).pow(2)
    assert not same_partition(nearest_normalised.sum(-1).argmin(1).numpy(), labels)

    with pytest.warns(UserWarning) if backend == "torch" else _no_warning():
        (spherical,) = cluster_features(HAND_POINTS, [2], n_redo=10)
    assert not same_partition(spherical.assignments.numpy(), labels)
    with pytest.raises(ValueError, match="raw_euclidean"):
        cluster_features(HAND_POINTS, [2], space="euclidean")


def _no_warning():
    import contextlib

    return contextlib.nullcontext()
