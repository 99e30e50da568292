"""Time of AMA's per-epoch k-means on a Sketchy-sized feature set, on this CPU.

Sketchy's training photos are about 70,000 images with 768-d ViT-B features, clustered every
epoch at 250, 500 and 1000 clusters with the release's settings (faiss, 20 iterations, 5
restarts, at most 2000 points per centroid). The features here are a mixture of Gaussians on the
sphere (100 components, like the 100 seen classes), generated from a fixed seed.

Prints the wall time of :func:`amalib.clustering.cluster_features` per granularity and number of
restarts, and the peak resident memory of the process.

Run: ``python benchmarks/bench_clustering.py [--n 70000] [--dim 768] [--ks 250 500 1000]
[--redo 1 5]``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np

from amalib.clustering import cluster_features


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def mixture_of_gaussians(n: int, dim: int, n_components: int = 100, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_components, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, n_components, size=n)
    noise = rng.standard_normal((n, dim), dtype=np.float32) * np.float32(0.7 / np.sqrt(dim))
    features = centres[labels] + noise
    return features.astype(np.float32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=70_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--ks", type=int, nargs="+", default=[250, 500, 1000])
    parser.add_argument("--redo", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args(argv)

    import faiss

    print(f"peak RSS after imports: {peak_rss_mib():.0f} MiB")
    features = mixture_of_gaussians(args.n, args.dim)
    print(
        f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} OpenMP threads; "
        f"features {args.n} x {args.dim} float32; {args.iters} iterations, "
        "max 2000 points per centroid"
    )
    print(f"peak RSS after generating the features: {peak_rss_mib():.0f} MiB")
    print(f"{'K':>6} {'restarts':>9} {'time':>10} {'inertia':>12} {'empty':>6} {'peak RSS':>10}")
    for n_redo in args.redo:
        for k in args.ks:
            start = time.perf_counter()
            (result,) = cluster_features(
                features, [k], n_iter=args.iters, n_redo=n_redo, max_points_per_centroid=2000
            )
            elapsed = time.perf_counter() - start
            print(
                f"{k:>6} {n_redo:>9} {elapsed:>9.1f}s {result.inertia:>12.1f} "
                f"{result.n_empty:>6} {peak_rss_mib():>8.0f}MiB",
                flush=True,
            )


if __name__ == "__main__":
    main()
