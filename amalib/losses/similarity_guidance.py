"""Similarity guidance loss L_SG of AMA: STML's relaxed contrastive loss, vectorised.

Kim et al., "Self-Taught Metric Learning without Labels", CVPR 2022 (STML), used by Yin et al.,
"Asymmetric Mutual Alignment for Unsupervised Zero-Shot Sketch-Based Image Retrieval", AAAI 2024
(``docs/method.md``, loss 4). The teacher's pairwise similarities, refined by the context of mutual
k-nearest neighbours, are soft targets for the student's normalised pairwise distances.

Differences from the public code (STML's ``RC_STML`` and AMA's ``SGLoss``): no Python loop over
samples (the contextual similarity is a few matrix products); student and teacher rows must
describe the same images (the AMA release compared all student crops with the teacher's global
crops); the student distance is normalised by its row mean over ``j != i`` (the public code
divides by ``N`` including the zero diagonal, a factor ``(N - 1) / N``); the half-neighbourhood
size is at least 1 (``round(1 / 2) = 0`` would average an empty set).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SimilarityGuidanceLoss", "contextual_similarity"]


def _squared_distances(x: torch.Tensor) -> torch.Tensor:
    """``(N, N)`` squared Euclidean distances from the Gram matrix, clamped at 0."""
    sq = (x * x).sum(1)
    return (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min(0.0)


@torch.no_grad()
def contextual_similarity(pairwise_similarity: torch.Tensor, topk: int) -> torch.Tensor:
    """STML's contextual similarity ``W^C`` from a teacher similarity matrix, vectorised.

    With ``k = min(topk, N)`` and ``h = max(1, round(k / 2))``:

    1. ``NN_k(i)``: the ``k`` most similar samples to ``i`` under ``pairwise_similarity``,
       including ``i`` itself (it is always ranked first, as in STML where ``W^P_ii = 1`` is the
       maximum); ``V_ij = 1`` iff ``j in NN_k(i)``.
    2. Mutual neighbours ``R = V * V^T`` (``R_ij = 1`` iff each is in the other's k-NN).
    3. ``W~_ij = R_ij |R(i) ∩ R(j)| / |R(i)| = R_ij (R R^T)_ij / sum_l R_il``.
    4. Query expansion over the ``h`` nearest neighbours:
       ``W^_i = (1 / h) sum_{m in NN_h(i)} W~_m``.
    5. Symmetrise: ``W^C = (W^ + W^^T) / 2``.

    Args:
        pairwise_similarity: ``(N, N)`` teacher similarities ``W^P`` (larger = closer).
        topk: neighbourhood size ``k`` (includes the sample itself, as in STML; release: 10).

    Returns:
        ``(N, N)`` matrix ``W^C`` with entries in ``[0, 1]``.
    """
    n = pairwise_similarity.shape[0]
    k = max(1, min(int(topk), n))
    half = max(1, int(round(k / 2)))
    ranking = pairwise_similarity.clone()
    ranking.fill_diagonal_(float("inf"))
    neighbours = torch.topk(ranking, k, dim=1).indices  # (N, k), self first
    knn = torch.zeros_like(pairwise_similarity).scatter_(1, neighbours, 1.0)
    mutual = knn * knn.T  # R, (N, N); row i is non-zero only among the k neighbours of i
    # |R(i) ∩ R(j)| is only needed for j in R(i) ⊆ NN_k(i): gather the k candidate rows,
    # O(N k N) instead of the dense O(N^3) product R R^T.
    overlap = (mutual[:, None, :] * mutual[neighbours]).sum(-1)  # (N, k)
    is_mutual = mutual.gather(1, neighbours)  # (N, k)
    values = is_mutual * overlap / mutual.sum(1, keepdim=True).clamp_min(1.0)
    w_tilde = torch.zeros_like(pairwise_similarity).scatter_(1, neighbours, values)
    w_hat = w_tilde[neighbours[:, :half]].mean(1)  # query expansion, (N, h, N) -> (N, N)
    return (w_hat + w_hat.T) / 2


class SimilarityGuidanceLoss(nn.Module):
    """STML relaxed contrastive loss with teacher similarities as soft targets.

    For ``N`` images with student features ``s`` and teacher features ``t`` (same images, same
    order):

    * ``W^P_ij = exp(-||t_i - t_j||^2 / sigma)``;
    * ``W^C = contextual_similarity(W^P, topk)`` (mutual k-NN context, see
      :func:`contextual_similarity`);
    * ``W = (W^P + W^C) / 2`` — detached (a teacher quantity);
    * ``d_ij = ||s_i - s_j|| / mean_{l != i} ||s_i - s_l||``;
    * ``loss = sum_{i != j} [W_ij d_ij^2 + (1 - W_ij) relu(delta - d_ij)^2] / (N (N - 1))``.

    Numerics: distances come from the Gram matrix, squared distances are clamped at ``eps``
    before the square root and the diagonal is masked before the root, so there is no NaN or
    infinite gradient for identical rows or on the diagonal.

    Args:
        sigma: bandwidth of the teacher's Gaussian similarity.
        delta: margin of the push term.
        topk: mutual-k-NN neighbourhood size (including the sample itself; clamped to ``N``).
        eps: floor of squared distances and of the row means.
    """

    def __init__(
        self, sigma: float = 1.0, delta: float = 1.0, topk: int = 10, eps: float = 1e-12
    ) -> None:
        super().__init__()
        if sigma <= 0:
            raise ValueError("sigma must be positive")
        if topk < 1:
            raise ValueError("topk must be >= 1")
        self.sigma = float(sigma)
        self.delta = float(delta)
        self.topk = int(topk)
        self.eps = float(eps)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, delta={self.delta}, topk={self.topk}"

    @torch.no_grad()
    def teacher_weights(self, teacher_features: torch.Tensor) -> torch.Tensor:
        """``(N, N)`` soft positive weights ``W = (W^P + W^C) / 2`` from the teacher features."""
        teacher = teacher_features.detach()
        if teacher.dtype in (torch.float16, torch.bfloat16):
            teacher = teacher.float()  # exp and k-NN ranking in at least single precision
        w_p = torch.exp(-_squared_distances(teacher) / self.sigma)
        w_c = contextual_similarity(w_p, self.topk)
        return (w_p + w_c) / 2

    def student_distances(self, student_features: torch.Tensor) -> torch.Tensor:
        """``(N, N)`` row-mean-normalised student distances ``d_ij`` (zero diagonal)."""
        n = student_features.shape[0]
        eye = torch.eye(n, dtype=torch.bool, device=student_features.device)
        sq = _squared_distances(student_features).clamp_min(self.eps)
        dist = sq.masked_fill(eye, 1.0).sqrt().masked_fill(eye, 0.0)
        row_mean = dist.sum(1, keepdim=True) / (n - 1)
        return dist / row_mean.clamp_min(self.eps)

    def forward(
        self, student_features: torch.Tensor, teacher_features: torch.Tensor
    ) -> torch.Tensor:
        """Compute L_SG for one domain.

        Args:
            student_features: ``(N, D)`` student features (e.g. first global crop of each image).
            teacher_features: ``(N, D_t)`` teacher features of the same ``N`` images, same order.

        Returns:
            Scalar loss (0 with a gradient path when ``N < 2``).
        """
        if student_features.ndim != 2 or teacher_features.ndim != 2:
            raise ValueError("student_features and teacher_features must be 2-D (N, D)")
        n = student_features.shape[0]
        if teacher_features.shape[0] != n:
            raise ValueError(
                "student and teacher rows must describe the same images: got "
                f"{n} student rows and {teacher_features.shape[0]} teacher rows"
            )
        if n < 2:
            return student_features.sum() * 0.0
        weights = self.teacher_weights(teacher_features).to(student_features.dtype)
        dist = self.student_distances(student_features)
        off_diag = ~torch.eye(n, dtype=torch.bool, device=student_features.device)
        pull = weights * dist.pow(2)
        push = (1.0 - weights) * torch.relu(self.delta - dist).pow(2)
        return torch.where(off_diag, pull + push, torch.zeros_like(pull)).sum() / (n * (n - 1))
