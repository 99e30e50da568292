"""Tests of SimilarityGuidanceLoss (STML relaxed contrastive loss) against a loop reference."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from amalib.losses.similarity_guidance import SimilarityGuidanceLoss, contextual_similarity


def reference_teacher_weights(teacher, sigma, topk):
    """STML's W = (W^P + W^C) / 2 with Python loops and sets (the construction of RC_STML)."""
    n = teacher.shape[0]
    k = min(topk, n)
    half = max(1, round(k / 2))
    w_p = [
        [math.exp(-float(((teacher[i] - teacher[j]) ** 2).sum()) / sigma) for j in range(n)]
        for i in range(n)
    ]
    # k nearest neighbours of i by decreasing similarity, i itself first.
    knn = []
    for i in range(n):
        others = sorted((j for j in range(n) if j != i), key=lambda j: -w_p[i][j])
        knn.append([i, *others[: k - 1]])
    mutual = [{j for j in knn[i] if i in knn[j]} for i in range(n)]
    w_tilde = [
        [len(mutual[i] & mutual[j]) / len(mutual[i]) if j in mutual[i] else 0.0 for j in range(n)]
        for i in range(n)
    ]
    w_hat = [[sum(w_tilde[m][j] for m in knn[i][:half]) / half for j in range(n)] for i in range(n)]
    return [[(w_p[i][j] + (w_hat[i][j] + w_hat[j][i]) / 2) / 2 for j in range(n)] for i in range(n)]


def reference_loss(student, teacher, sigma, delta, topk):
    n = student.shape[0]
    weights = reference_teacher_weights(teacher, sigma, topk)
    dist = [[torch.linalg.vector_norm(student[i] - student[j]) for j in range(n)] for i in range(n)]
    total = 0.0
    for i in range(n):
        row_mean = sum(dist[i][j] for j in range(n) if j != i) / (n - 1)
        for j in range(n):
            if j == i:
                continue
            d = dist[i][j] / row_mean
            w = weights[i][j]
            total = total + w * d**2 + (1 - w) * torch.relu(delta - d) ** 2
    return total / (n * (n - 1))


def normalised(*shape, seed):
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=gen, dtype=torch.float64), dim=-1)


GRID = list(itertools.product([2, 3, 7, 12], [1, 3, 10, 50], [0.5, 1.0], [0.5, 1.0]))


@pytest.mark.parametrize(("n", "topk", "sigma", "delta"), GRID)
def test_matches_loop_reference_value_and_gradient(n, topk, sigma, delta):
    seed = n * 100 + topk
    student = normalised(n, 6, seed=seed).requires_grad_(True)
    teacher = normalised(n, 5, seed=seed + 1)
    got = SimilarityGuidanceLoss(sigma=sigma, delta=delta, topk=topk)(student, teacher)
    (grad_got,) = torch.autograd.grad(got, student)
    want = reference_loss(student, teacher, sigma, delta, topk)
    (grad_want,) = torch.autograd.grad(want, student)
    assert got.item() == pytest.approx(want.item(), rel=1e-9, abs=1e-12)
    torch.testing.assert_close(grad_got, grad_want, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize(("n", "topk"), [(5, 1), (9, 4), (16, 10), (30, 7)])
def test_contextual_similarity_matches_reference(n, topk):
    teacher = normalised(n, 4, seed=n + topk)
    loss_fn = SimilarityGuidanceLoss(topk=topk)
    want = torch.tensor(reference_teacher_weights(teacher, 1.0, topk), dtype=torch.float64)
    torch.testing.assert_close(loss_fn.teacher_weights(teacher), want)
    w_c = contextual_similarity(torch.exp(-(torch.cdist(teacher, teacher) ** 2)), topk)
    assert torch.allclose(w_c, w_c.T) and (w_c >= 0).all() and (w_c <= 1 + 1e-12).all()


def test_two_samples_by_hand():
    # N = 2, topk = 10 -> k = 2: each sample is the other's neighbour, R = all ones,
    # W~ = |R ∩ R| / |R| = 1 everywhere, W^C = 1 and W = (exp(-a / sigma) + 1) / 2 with
    # a = ||t0 - t1||^2. The only off-diagonal student distance is its own row mean: d = 1.
    # Loss = 2 [W * 1 + (1 - W) * relu(delta - 1)^2] / (2 * 1) = W for delta = 1.
    teacher = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    a = ((teacher[0] - teacher[1]) ** 2).sum().item()  # = 0.16 + 0.64 = 0.8
    student = torch.tensor([[0.3, 0.1], [-0.2, 0.5]])
    loss = SimilarityGuidanceLoss(sigma=1.0, delta=1.0, topk=10)(student, teacher)
    assert loss.item() == pytest.approx((math.exp(-a) + 1) / 2, rel=1e-6)
    # With delta = 2 the push term adds (1 - W) * (2 - 1)^2.
    loss = SimilarityGuidanceLoss(sigma=1.0, delta=2.0, topk=10)(student, teacher)
    assert loss.item() == pytest.approx(1.0, rel=1e-6)  # W + (1 - W)


def test_gradients_reach_student_only_and_are_finite_for_duplicates():
    student = normalised(10, 8, seed=0).float()
    student[3] = student[7]  # identical rows: zero distance off the diagonal
    student.requires_grad_(True)
    teacher = normalised(10, 8, seed=1).float().requires_grad_(True)
    loss = SimilarityGuidanceLoss()(student, teacher)
    loss.backward()
    assert torch.isfinite(loss)
    assert student.grad is not None and torch.isfinite(student.grad).all()
    assert student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_rows_must_describe_the_same_images():
    with pytest.raises(ValueError, match="same images"):
        SimilarityGuidanceLoss()(normalised(20, 4, seed=0), normalised(4, 4, seed=1))


def test_single_sample_is_zero():
    student = normalised(1, 4, seed=0).requires_grad_(True)
    loss = SimilarityGuidanceLoss()(student, normalised(1, 4, seed=1))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(student.grad).all()


def test_loss_decreases_with_sgd():
    teacher = normalised(16, 8, seed=2).float()
    weights = normalised(16, 8, seed=3).float().requires_grad_(True)
    opt = torch.optim.SGD([weights], lr=0.5)
    loss_fn = SimilarityGuidanceLoss(topk=5)
    losses = []
    for _ in range(30):
        loss = loss_fn(F.normalize(weights, dim=1), teacher)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
