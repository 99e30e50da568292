"""Retrieval-metric benchmark: amalib's chunked metrics vs the per-query reference.

Prints, median of several runs, on the same random clustered features:

1. *Metrics on a score matrix* — the per-query reference (for each query: a stable argsort of
   its scores, cumulative sums, and the precision envelope in a Python loop, as the release's
   evaluation script does; mAP@all only) against :func:`amalib.metrics.evaluate_scores` (all four
   metrics) on the same float32 score matrix. This is the ratio issue 2 asks for.
2. *End to end from features* — the release's way (a float64 score matrix, then (1)) against
   :func:`amalib.metrics.evaluate_retrieval` (features on the 2^-26 grid, their exact float64
   product in chunks, rounded once to float32, then the metrics: scores that do not depend on
   the chunk size, threads or CPU). Both include a float64 matrix product, which costs more than
   amalib's metrics and bounds this ratio.
3. A QuickDraw-sized evaluation (92,291 sketch queries x 54,151 photos, 768-d, 30 classes):
   wall time and peak memory.

    python benchmarks/bench_metrics.py                   # all three
    python benchmarks/bench_metrics.py --skip-quickdraw  # 1,000 queries x 54,151 photos only
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np
import torch

from amalib.metrics import evaluate_retrieval, evaluate_scores


def reference_map(scores: np.ndarray, ql: np.ndarray, gl: np.ndarray) -> float:
    """Per-query VOC AP the way the release computes it: argsort, cumsum, Python envelope loop."""
    aps = []
    for i in range(len(ql)):
        order = np.argsort(-scores[i], kind="stable")
        rel = gl[order] == ql[i]
        n_pos = rel.sum()
        tp = np.cumsum(rel)
        rec = tp / n_pos
        prec = tp / np.arange(1, len(rel) + 1)
        mrec = np.concatenate(([0.0], rec, [1.0]))
        mpre = np.concatenate(([0.0], prec, [0.0]))
        for k in range(len(mpre) - 2, -1, -1):
            mpre[k] = max(mpre[k], mpre[k + 1])
        idx = np.where(mrec[1:] != mrec[:-1])[0]
        aps.append(float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1])))
    return float(np.mean(aps))


def release_style_map(qf: np.ndarray, ql: np.ndarray, gf: np.ndarray, gl: np.ndarray) -> float:
    """The release's way from features: a full float64 score matrix, then :func:`reference_map`."""
    qf = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gf = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    return reference_map(qf.astype(np.float64) @ gf.astype(np.float64).T, ql, gl)


def timed(fn, repeats: int):
    """Median wall time of ``repeats`` calls and the last result."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def clustered_features(rng, n: int, dim: int, n_classes: int, centres: np.ndarray):
    labels = rng.integers(0, n_classes, n)
    feats = centres[labels] + rng.standard_normal((n, dim), dtype=np.float32)
    return feats.astype(np.float32), labels


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--gallery", type=int, default=54_151)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-quickdraw", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    rng = np.random.default_rng(0)
    dim, n_classes = 768, 30
    centres = rng.standard_normal((n_classes, dim), dtype=np.float32) * 0.15

    qf, ql = clustered_features(rng, args.queries, dim, n_classes, centres)
    gf, gl = clustered_features(rng, args.gallery, dim, n_classes, centres)
    n = args.queries
    size = f"{n} x {args.gallery}"
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    scores = qn @ gn.T  # float32, shared by both sides of part 1

    ref_s, ref = timed(lambda: reference_map(scores, ql, gl), args.repeats)
    fast_s, fast = timed(lambda: evaluate_scores(scores, ql, gl), args.repeats)
    print(f"[1: metrics on the same {size} float32 score matrix]")
    print(f"  per-query reference (mAP@all only): {1e3 * ref_s / n:.2f} ms/query")
    print(f"  amalib evaluate_scores (all four):  {1e3 * fast_s / n:.3f} ms/query")
    print(f"  speed-up: {ref_s / fast_s:.1f}x   mAP@all ref={ref:.6f} amalib={fast['mAP@all']:.6f} "
          f"(|diff|={abs(ref - fast['mAP@all']):.1e})")

    ref_s, ref = timed(lambda: release_style_map(qf, ql, gf, gl), args.repeats)
    fast_s, fast = timed(lambda: evaluate_retrieval(qf, ql, gf, gl), args.repeats)
    print(f"[2: end to end from {dim}-d features, {size}]")
    print(f"  release's way (float64 matrix + reference): {1e3 * ref_s / n:.2f} ms/query")
    print(f"  amalib evaluate_retrieval (all four):       {1e3 * fast_s / n:.3f} ms/query")
    print(f"  speed-up: {ref_s / fast_s:.1f}x   mAP@all ref={ref:.6f} amalib={fast['mAP@all']:.6f}")
    print(f"  (median of {args.repeats} runs each, torch threads {torch.get_num_threads()})")

    if args.skip_quickdraw:
        return
    n_q, n_g = 92_291, 54_151
    qf, ql = clustered_features(rng, n_q, dim, n_classes, centres)
    gf, gl = clustered_features(rng, n_g, dim, n_classes, centres)
    rss_before = peak_rss_gb()
    t0 = time.perf_counter()
    result = evaluate_retrieval(qf, ql, gf, gl)
    elapsed = time.perf_counter() - t0
    print(f"[3: QuickDraw-sized] {n_q} x {n_g}, dim {dim}, {n_classes} classes: {elapsed:.1f} s, "
          f"peak RSS {peak_rss_gb():.2f} GB (features alone: {rss_before:.2f} GB before the call)")
    print("  " + ", ".join(f"{k}={result[k]:.4f}" for k in ("mAP@all", "mAP@200", "P@100", "P@200")))


if __name__ == "__main__":
    main()
