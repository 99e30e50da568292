"""Retrieval-metric benchmark: amalib's chunked metrics vs the release's per-query way.

Prints (1) the speed-up of :func:`amalib.metrics.evaluate_retrieval` over a per-query reference
(full float64 score matrix, an argsort and a Python precision loop per query, as in the release's
evaluation script) on the same inputs, median of several runs; and (2) the wall time and peak
memory of a QuickDraw-sized evaluation (92,291 sketch queries x 54,151 photos, 768-d, 30 classes).

    python benchmarks/bench_metrics.py                 # both parts
    python benchmarks/bench_metrics.py --skip-quickdraw  # 1,000 queries x 54,151 photos only
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np
import torch

from amalib.metrics import evaluate_retrieval


def release_style_map(qf: np.ndarray, ql: np.ndarray, gf: np.ndarray, gl: np.ndarray) -> float:
    """Per-query VOC AP the way the release computes it (float64 matrix, Python loop)."""
    qf = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gf = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    scores = (qf.astype(np.float64) @ gf.astype(np.float64).T)
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
    ref_t, fast_t = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ref = release_style_map(qf, ql, gf, gl)
        ref_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fast = evaluate_retrieval(qf, ql, gf, gl)
        fast_t.append(time.perf_counter() - t0)
    ref_m, fast_m = statistics.median(ref_t), statistics.median(fast_t)
    print(f"[per-query reference] {args.queries} x {args.gallery}: "
          f"mAP@all ref={ref:.6f} amalib={fast['mAP@all']:.6f} (|diff|={abs(ref - fast['mAP@all']):.1e})")
    print(f"  reference (mAP@all only): median {ref_m:.3f} s = {1e3 * ref_m / args.queries:.2f} ms/query")
    print(f"  amalib (all four metrics): median {fast_m:.3f} s = {1e3 * fast_m / args.queries:.3f} ms/query")
    print(f"  speed-up: {ref_m / fast_m:.1f}x  (median of {args.repeats} runs, torch threads "
          f"{torch.get_num_threads()})")

    if args.skip_quickdraw:
        return
    n_q, n_g = 92_291, 54_151
    qf, ql = clustered_features(rng, n_q, dim, n_classes, centres)
    gf, gl = clustered_features(rng, n_g, dim, n_classes, centres)
    rss_before = peak_rss_gb()
    t0 = time.perf_counter()
    result = evaluate_retrieval(qf, ql, gf, gl)
    elapsed = time.perf_counter() - t0
    print(f"[QuickDraw-sized] {n_q} x {n_g}, dim {dim}, {n_classes} classes: {elapsed:.1f} s, "
          f"peak RSS {peak_rss_gb():.2f} GB (features alone: {rss_before:.2f} GB before the call)")
    print("  " + ", ".join(f"{k}={result[k]:.4f}" for k in ("mAP@all", "mAP@200", "P@100", "P@200")))


if __name__ == "__main__":
    main()
