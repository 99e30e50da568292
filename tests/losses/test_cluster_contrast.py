"""Tests of ClusterContrastLoss against a loop reference and hand-computed cases."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from amalib.losses.cluster_contrast import ClusterContrastLoss


def reference_cluster_contrast(
    student, teacher, cluster_ids, prototypes, temperature, prototype_temperature, threshold
):
    """The loss written the slow, obvious way: loops over granularities, anchors and candidates."""
    batch = teacher.shape[0]
    n_rows = student.shape[0]
    n_gran = cluster_ids.shape[0]
    per_granularity, kept_fraction, all_positives = [], [], []
    for g in range(n_gran):
        anchor_losses, n_positives = [], []
        for i in range(batch):
            # Confidence filter: the teacher's soft assignment to the prototypes of granularity g.
            scores = [float(teacher[i] @ mu) / prototype_temperature for mu in prototypes[g]]
            denom = sum(math.exp(s) for s in scores)
            own = math.exp(scores[int(cluster_ids[g, i])]) / denom
            candidates = list(range(batch, n_rows))
            logits = [float(student[i] @ student[j]) / temperature for j in candidates]
            log_norm = math.log(sum(math.exp(x) for x in logits))
            positives = []
            for j, logit in zip(candidates, logits):
                sample_j = j % batch
                if all(cluster_ids[h, i] == cluster_ids[h, sample_j] for h in range(g + 1)):
                    positives.append(logit - log_norm)
            if own > threshold and positives:
                anchor_losses.append(-sum(positives) / len(positives))
                n_positives.append(len(positives))
        kept_fraction.append(len(anchor_losses) / batch)
        per_granularity.append(sum(anchor_losses) / len(anchor_losses) if anchor_losses else 0.0)
        all_positives += n_positives
    # mean positives of a kept anchor, over the kept anchors of every granularity
    stats = {"kept_fraction": sum(kept_fraction) / n_gran,
             "mean_positives": sum(all_positives) / len(all_positives) if all_positives else 0.0}
    return sum(per_granularity) / n_gran, stats


def random_case(batch, n_crops, dim, cluster_sizes, seed):
    gen = torch.Generator().manual_seed(seed)
    student = F.normalize(
        torch.randn(n_crops * batch, dim, generator=gen, dtype=torch.float64), dim=1
    )
    teacher = F.normalize(torch.randn(batch, dim, generator=gen, dtype=torch.float64), dim=1)
    ids = torch.stack([torch.randint(0, k, (batch,), generator=gen) for k in cluster_sizes])
    protos = [
        F.normalize(torch.randn(k, dim, generator=gen, dtype=torch.float64), dim=1)
        for k in cluster_sizes
    ]
    return student, teacher, ids, protos


GRID = list(
    itertools.product(
        [2, 5, 8],  # batch
        [2, 3, 6],  # crops
        [(2,), (3, 2), (4, 3, 2)],  # clusters per granularity
        [0.1, 0.5],  # temperature
    )
)


@pytest.mark.parametrize(("batch", "n_crops", "cluster_sizes", "temperature"), GRID)
def test_matches_loop_reference(batch, n_crops, cluster_sizes, temperature):
    seed = hash((batch, n_crops, cluster_sizes, temperature)) % 10_000
    student, teacher, ids, protos = random_case(batch, n_crops, 8, cluster_sizes, seed)
    loss_fn = ClusterContrastLoss(temperature, prototype_temperature=0.3, confidence_threshold=0.3)
    got = loss_fn(student, teacher, ids, protos)
    want, stats = reference_cluster_contrast(student, teacher, ids, protos, temperature, 0.3, 0.3)
    assert torch.isfinite(got)
    assert got.item() == pytest.approx(want, rel=1e-9, abs=1e-12)
    got_stats = loss_fn.stats()
    assert all(isinstance(v, float) for v in got_stats.values())
    assert got_stats["kept_fraction"] == pytest.approx(stats["kept_fraction"])
    assert got_stats["mean_positives"] == pytest.approx(stats["mean_positives"])


def test_three_samples_by_hand():
    # B = 3 samples, C = 2 crops, D = 2, temperature 1. Rows 0..2 are the anchors (crop 0),
    # rows 3..5 the candidates (crop 1 of samples 0, 1, 2).
    #   anchors:    s0 = (1, 0), s1 = (0, 1), s2 = (1, 0)
    #   candidates: c0 = (1, 0), c1 = (1, 0), c2 = (0, 1)
    # Clusters: samples 0 and 1 in cluster 0, sample 2 in cluster 1.
    # Anchor 0: logits (1, 1, 0); positives c0, c1, each log(e / (2e + 1)) = 1 - log(2e + 1)
    #           -> l0 = log(2e + 1) - 1.
    # Anchor 1: logits (0, 0, 1); positives c0, c1, each log(1 / (2 + e)) -> l1 = log(2 + e).
    # Anchor 2: logits (1, 1, 0); positive c2 only: log(1 / (2e + 1))     -> l2 = log(2e + 1).
    # Teacher features equal the prototypes of their clusters, prototype temperature 0.2:
    # own-cluster probability e^5 / (e^5 + 1) ~ 0.993 > 0.2, every anchor is kept.
    # L = (l0 + l1 + l2) / 3 = (log(6.4366) - 1 + log(4.7183) + log(6.4366)) / 3 ~ 1.4251.
    e = math.e
    student = torch.tensor([[1.0, 0], [0, 1], [1, 0], [1, 0], [1, 0], [0, 1]])
    prototypes = [torch.tensor([[1.0, 0], [0, 1]])]
    teacher = torch.tensor([[1.0, 0], [1, 0], [0, 1]])
    ids = torch.tensor([[0, 0, 1]])
    loss_fn = ClusterContrastLoss(temperature=1.0, prototype_temperature=0.2)
    want = (math.log(2 * e + 1) - 1 + math.log(2 + e) + math.log(2 * e + 1)) / 3
    assert loss_fn(student, teacher, ids, prototypes).item() == pytest.approx(want, rel=1e-6)

    # Make the teacher of sample 1 ambiguous: t1 = (1, 1)/sqrt(2) gives probability 0.5 for each
    # prototype; with threshold 0.6 anchor 1 is filtered out -> L = (l0 + l2) / 2.
    teacher[1] = torch.tensor([1.0, 1.0]) / math.sqrt(2)
    loss_fn = ClusterContrastLoss(1.0, prototype_temperature=0.2, confidence_threshold=0.6)
    want = (math.log(2 * e + 1) - 1 + math.log(2 * e + 1)) / 2
    assert loss_fn(student, teacher, ids, prototypes).item() == pytest.approx(want, rel=1e-6)
    assert loss_fn.stats()["kept_fraction"] == pytest.approx(2 / 3)


def test_granularities_use_intersection_of_masks():
    # Samples 0 and 1 share the cluster at granularity 0 but not at granularity 1, so at
    # granularity 1 they must not be positives of each other.
    student, teacher, _, _ = random_case(batch=3, n_crops=3, dim=6, cluster_sizes=(2,), seed=1)
    g0 = torch.tensor([0, 0, 1])
    g1 = torch.tensor([0, 1, 1])
    intersection = torch.tensor([0, 1, 2])  # the distinct (g0, g1) pairs
    protos = [F.normalize(torch.randn(3, 6, dtype=torch.float64), dim=1)] * 2
    keep_all = ClusterContrastLoss(0.2, confidence_threshold=-1.0)  # filter disabled
    two = keep_all(student, teacher, torch.stack([g0, g1]), protos)
    only_g0 = keep_all(student, teacher, g0[None], protos[:1])
    only_intersection = keep_all(student, teacher, intersection[None], protos[:1])
    only_g1 = keep_all(student, teacher, g1[None], protos[:1])
    assert two.item() == pytest.approx(((only_g0 + only_intersection) / 2).item(), rel=1e-12)
    # ... and not the granularity-1 mask alone (the test can tell them apart on this data).
    assert two.item() != pytest.approx(((only_g0 + only_g1) / 2).item(), rel=1e-6)


def test_all_anchors_filtered_gives_zero_with_finite_gradient():
    student, teacher, ids, protos = random_case(4, 3, 5, (2, 3), seed=3)
    student = student.float().requires_grad_(True)
    loss_fn = ClusterContrastLoss(confidence_threshold=1.0)  # no probability exceeds 1
    loss = loss_fn(student, teacher.float(), ids, [p.float() for p in protos])
    assert loss.item() == 0.0
    loss.backward()
    assert student.grad is not None
    assert torch.isfinite(student.grad).all() and (student.grad == 0).all()
    assert loss_fn.stats()["kept_fraction"] == 0.0


def test_single_crop_has_no_candidates():
    student, teacher, ids, protos = random_case(4, 1, 5, (2,), seed=4)
    student.requires_grad_(True)
    loss = ClusterContrastLoss()(student, teacher, ids, protos)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(student.grad).all()


def test_gradients_reach_student_only():
    student, teacher, ids, protos = random_case(6, 4, 8, (3, 2), seed=5)
    student = student.float().requires_grad_(True)
    teacher = teacher.float().requires_grad_(True)
    protos = [p.float().requires_grad_(True) for p in protos]
    loss = ClusterContrastLoss(confidence_threshold=0.0)(student, teacher, ids, protos)
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None
    assert all(p.grad is None for p in protos)


def test_shape_errors():
    student, teacher, ids, protos = random_case(4, 2, 5, (2,), seed=6)
    loss_fn = ClusterContrastLoss()
    with pytest.raises(ValueError):
        loss_fn(student[:-1], teacher, ids, protos)
    with pytest.raises(ValueError):
        loss_fn(student, teacher, ids, protos * 2)
    with pytest.raises(ValueError):
        loss_fn(student, teacher, ids[:, :3], protos)
    with pytest.raises(ValueError, match="cluster id"):
        loss_fn(student, teacher, ids + 5, protos)
    with pytest.raises(ValueError, match=r"prototypes\[0\] must be \(K, 5\)"):
        loss_fn(student, teacher, ids + 5, [p.T for p in protos])  # blames the prototypes


def test_loss_decreases_with_sgd():
    student, teacher, ids, protos = random_case(8, 4, 8, (2, 3), seed=7)
    weights = student.float().clone().requires_grad_(True)
    loss_fn = ClusterContrastLoss(confidence_threshold=0.0)
    opt = torch.optim.SGD([weights], lr=0.5)
    losses = []
    for _ in range(20):
        loss = loss_fn(
            F.normalize(weights, dim=1), teacher.float(), ids, [p.float() for p in protos]
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_statistics_are_exact_counts_in_half_precision(dtype):
    # 128 samples x 10 crops in one cluster: every anchor keeps all 9 * 128 = 1152 other crops
    # as positives; 128 * 1152 = 147,456 would overflow float16 if it were summed in it.
    batch, n_crops = 128, 10
    student, teacher, _, protos = random_case(batch, n_crops, 8, (1,), seed=8)
    ids = torch.zeros(1, batch, dtype=torch.long)
    loss_fn = ClusterContrastLoss(confidence_threshold=-1.0)
    loss = loss_fn(student.to(dtype), teacher.to(dtype), ids, [p.to(dtype) for p in protos])
    want, stats = reference_cluster_contrast(student, teacher, ids, protos, 0.2, 0.2, -1.0)
    assert loss_fn.stats() == {"kept_fraction_g0": 1.0, "kept_fraction": 1.0,
                               "mean_positives": 1152.0}
    assert stats["mean_positives"] == 1152.0
    assert loss.float().item() == pytest.approx(want, rel=2e-2)
