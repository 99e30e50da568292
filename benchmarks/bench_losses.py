"""Forward+backward time of the vectorised similarity-guidance loss against loop references.

Two references, both computing the same loss as :class:`SimilarityGuidanceLoss`:

* ``per-sample loop``: the public STML/AMA code's structure — the contextual similarity ``W~``
  filled row by row in a Python loop over samples, the rest in tensor ops;
* ``per-pair loop``: everything in Python loops over samples and pairs (the unit test's
  reference), timed with fewer repeats because it is slow; at N = 256 it takes minutes, so it
  runs there only with ``--pairs-256``.

Also prints forward+backward times of the cluster contrastive and mutual alignment losses at
the release's sizes (32 samples x 10 crops, 768-d, granularities 250/500/1000) for information.

Run: ``python benchmarks/bench_losses.py [--pairs-256]`` (CPU, the torch thread count of the
machine). Timings are medians; on a loaded machine they are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from amalib.losses.cluster_contrast import ClusterContrastLoss
from amalib.losses.mutual_alignment import MutualAlignmentLoss, mutual_alignment_multi
from amalib.losses.similarity_guidance import SimilarityGuidanceLoss

DIM = 768


def sg_per_sample_loop(student, teacher, sigma=1.0, delta=1.0, topk=10):
    """Loss of SimilarityGuidanceLoss with the release's Python loop over samples for W~."""
    n = student.shape[0]
    k = min(topk, n)
    half = max(1, round(k / 2))
    eye = torch.eye(n, dtype=torch.bool)
    sq = torch.cdist(student, student).pow(2).clamp_min(1e-12).masked_fill(eye, 1.0)
    dist = sq.sqrt().masked_fill(eye, 0.0)
    dist = dist / (dist.sum(1, keepdim=True) / (n - 1))
    with torch.no_grad():
        t = teacher.detach()
        w_p = torch.exp(-torch.cdist(t, t).pow(2) / sigma)
        ranking = w_p.clone().fill_diagonal_(float("inf"))
        neighbours = torch.topk(ranking, k, dim=1).indices
        knn = torch.zeros_like(w_p).scatter_(1, neighbours, 1.0)
        mutual = ((knn + knn.T) / 2 == 1).float()
        w_tilde = torch.zeros_like(w_p)
        for i in range(n):
            nonzero = torch.where(mutual[i] != 0)[0]
            w_tilde[i, nonzero] = (mutual[:, nonzero].sum(1) / len(nonzero))[nonzero]
        w_hat = w_tilde[neighbours[:, :half]].mean(1)
        weights = (w_p + (w_hat + w_hat.T) / 2) / 2
    off = ~eye
    pull = weights * dist.pow(2)
    push = (1 - weights) * torch.relu(delta - dist).pow(2)
    return torch.where(off, pull + push, torch.zeros_like(pull)).sum() / (n * (n - 1))


def sg_per_pair_loop(student, teacher, sigma=1.0, delta=1.0, topk=10):
    """Loss of SimilarityGuidanceLoss with Python loops over samples and pairs."""
    n = student.shape[0]
    k = min(topk, n)
    half = max(1, round(k / 2))
    with torch.no_grad():
        t = teacher.detach()
        w_p = [
            [float(torch.exp(-((t[i] - t[j]) ** 2).sum() / sigma)) for j in range(n)]
            for i in range(n)
        ]
        knn = []
        for i in range(n):
            others = sorted((j for j in range(n) if j != i), key=lambda j: -w_p[i][j])
            knn.append([i, *others[: k - 1]])
        knn_sets = [set(row) for row in knn]
        mutual = [{j for j in knn[i] if i in knn_sets[j]} for i in range(n)]
        w_tilde = [
            [
                len(mutual[i] & mutual[j]) / len(mutual[i]) if j in mutual[i] else 0.0
                for j in range(n)
            ]
            for i in range(n)
        ]
        w_hat = [
            [sum(w_tilde[m][j] for m in knn[i][:half]) / half for j in range(n)] for i in range(n)
        ]
    total = student.new_zeros(())
    for i in range(n):
        dists = [
            torch.linalg.vector_norm(student[i] - student[j]) if j != i else None for j in range(n)
        ]
        row_mean = sum(d for d in dists if d is not None) / (n - 1)
        for j in range(n):
            if j == i:
                continue
            w = (w_p[i][j] + (w_hat[i][j] + w_hat[j][i]) / 2) / 2
            d = dists[j] / row_mean
            total = total + w * d**2 + (1 - w) * torch.relu(delta - d) ** 2
    return total / (n * (n - 1))


def time_fwd_bwd(fn, make_inputs, repeats):
    """Median wall time (seconds) of forward + backward over ``repeats`` runs (one warm-up)."""
    return time_interleaved({"fn": fn}, make_inputs, repeats)["fn"]


def time_interleaved(fns, make_inputs, repeats):
    """Median forward+backward time of each function, runs interleaved (one warm-up round).

    Interleaving gives every function the same share of a busy machine's background load, so the
    ratios stay meaningful when the absolute times are noisy.
    """
    times = {name: [] for name in fns}
    for r in range(repeats + 1):
        for name, fn in fns.items():
            inputs = make_inputs()
            start = time.perf_counter()
            fn(*inputs).backward()
            elapsed = time.perf_counter() - start
            if r > 0:
                times[name].append(elapsed)
    return {name: statistics.median(t) for name, t in times.items()}


def bench_similarity_guidance(pairs_256: bool = False):
    print(f"Similarity guidance (STML relaxed contrastive), D={DIM}, topk=10, forward+backward")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    header = f"{'N':>5} {'vectorised':>12} {'per-sample loop':>16} {'ratio':>7} "
    header += f"{'per-pair loop':>14} {'ratio':>8}"
    print(header)
    loss_fn = SimilarityGuidanceLoss()
    for n in (64, 256):
        gen = torch.Generator().manual_seed(n)

        def make_inputs(n=n, gen=gen):
            s = F.normalize(torch.randn(n, DIM, generator=gen), dim=1).requires_grad_(True)
            t = F.normalize(torch.randn(n, DIM, generator=gen), dim=1)
            return s, t

        s, t = make_inputs()
        a, b = loss_fn(s, t).item(), sg_per_sample_loop(s, t).item()
        assert abs(a - b) <= 1e-5 * abs(b), (a, b)
        medians = time_interleaved(
            {"fast": loss_fn, "per_sample": sg_per_sample_loop}, make_inputs, repeats=21
        )
        fast, per_sample = medians["fast"], medians["per_sample"]
        line = (
            f"{n:>5} {fast * 1e3:>10.2f}ms {per_sample * 1e3:>14.2f}ms {per_sample / fast:>6.1f}x "
        )
        if n <= 64 or pairs_256:
            per_pair = time_fwd_bwd(sg_per_pair_loop, make_inputs, repeats=3 if n <= 64 else 1)
            line += f"{per_pair * 1e3:>12.0f}ms {per_pair / fast:>7.0f}x"
        else:
            line += f"{'(--pairs-256)':>14}"
        print(line, flush=True)


def bench_other_losses():
    batch, n_crops, sizes = 32, 10, (250, 500, 1000)
    gen = torch.Generator().manual_seed(0)
    protos = [F.normalize(torch.randn(k, DIM, generator=gen), dim=1) for k in sizes]
    photo_protos = [F.normalize(torch.randn(k, DIM, generator=gen), dim=1) for k in sizes]
    ids = torch.stack([torch.randint(0, k, (batch,), generator=gen) for k in sizes])

    def cc_inputs():
        s = F.normalize(torch.randn(n_crops * batch, DIM, generator=gen), dim=1)
        t = F.normalize(torch.randn(batch, DIM, generator=gen), dim=1)
        return s.requires_grad_(True), t, ids, protos

    def ma_inputs():
        s = F.normalize(torch.randn(batch, DIM, generator=gen), dim=1).requires_grad_(True)
        p = F.normalize(torch.randn(batch, DIM, generator=gen), dim=1).requires_grad_(True)
        return s, p

    cc = ClusterContrastLoss(confidence_threshold=0.0)
    ma = MutualAlignmentLoss()
    cc_time = time_fwd_bwd(cc, cc_inputs, repeats=20)
    ma_time = time_fwd_bwd(
        lambda s, p: mutual_alignment_multi(ma, s, p, protos, photo_protos), ma_inputs, repeats=20
    )
    print(
        f"\nCluster contrastive, B={batch}, C={n_crops}, G=3 (250/500/1000): {cc_time * 1e3:.2f}ms"
    )
    print(
        f"Mutual alignment, B={batch} per domain, both domains x 3 granularities: {ma_time * 1e3:.2f}ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Forward+backward time of the AMA losses.")
    parser.add_argument(
        "--pairs-256", action="store_true", help="also time the per-pair loop at N=256 (minutes)"
    )
    args = parser.parse_args()
    bench_similarity_guidance(pairs_256=args.pairs_256)
    bench_other_losses()
