"""Cross-modality mutual alignment loss L_MA of AMA ("distance of distance").

Yin et al., "Asymmetric Mutual Alignment for Unsupervised Zero-Shot Sketch-Based Image
Retrieval", AAAI 2024 (``docs/method.md``, loss 3). The student features of one domain are
soft-assigned to the sketch prototypes and to the photo prototypes; the within-batch distance
matrices of the two assignments must agree. This aligns the relational structure of the two
domains without any sketch-photo pairing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MA_CROPS", "MutualAlignmentLoss", "mutual_alignment_multi", "mutual_alignment_rows"]

#: Values of ``loss.mutual_alignment.crops``: which student rows L_MA uses.
MA_CROPS = ("first_global", "both_global")


def mutual_alignment_rows(crops: str, batch: int, n_global: int) -> int:
    """How many leading rows of a domain's crop-major student features L_MA uses.

    Rows are crop-major (row ``c * batch + i`` is crop ``c`` of sample ``i``, global crops
    first), so the rows used are always a prefix:

    * ``"first_global"``: the first global crop of every sample, ``batch`` rows (amalib's
      original choice, one row per image).
    * ``"both_global"``: every global crop, ``n_global * batch`` rows. This is what the release
      does: ``dist_of_logit_loss`` takes ``q[0 : q.shape[0] / 5]`` of 2 global + 8 local crops,
      i.e. ``2 * batch`` rows, both global crops (the float slice index is one of the release's
      defects; read as ``//``). The distance matrices are then ``2B x 2B`` and each row's squared
      norm sums over twice as many columns, so on random inputs the loss is about twice the
      ``first_global`` value (2.0-2.1 measured): the release's effective MA weight is about
      twice that of ``first_global`` at the same ``ma_weight``.

    Args:
        crops: ``"first_global"`` or ``"both_global"``.
        batch: samples per domain in the batch (``B``).
        n_global: global crops per sample.

    Returns:
        The number of rows, ``batch`` or ``n_global * batch``.

    Raises:
        ValueError: on an unknown ``crops``.
    """
    if crops == "first_global":
        return batch
    if crops == "both_global":
        return n_global * batch
    raise ValueError(f"crops must be one of {MA_CROPS}, got {crops!r}")


class MutualAlignmentLoss(nn.Module):
    """Distance-of-distance loss between soft assignments to two prototype sets.

    For features ``z`` (``(B, D)``) and prototypes ``M_X`` (``(K, D)``), ``X`` in
    {sketch, photo}:

    * ``p^X_i = softmax_k(z_i . M_X[k] / temperature)``;
    * ``D^X_ij = 1 - cos(p^X_i, p^X_j)``;
    * ``loss = mean_i ||D^sketch_i - D^photo_i||^2`` (squared L2 norm of row differences).

    The prototypes are detached (they come from k-means of the teacher); gradients reach ``z``
    only. The loss is exactly zero when the two prototype sets are identical.

    Args:
        temperature: softmax temperature of the soft assignment (release: 0.01).
    """

    def __init__(self, temperature: float = 0.01) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.temperature = float(temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"

    def assignment_distances(
        self, features: torch.Tensor, prototypes: torch.Tensor
    ) -> torch.Tensor:
        """``(B, B)`` matrix ``1 - cos(p_i, p_j)`` of the soft assignments to ``prototypes``."""
        probs = F.softmax(features @ prototypes.detach().T / self.temperature, dim=1)
        probs = F.normalize(probs, dim=1)
        return 1.0 - probs @ probs.T

    def forward(
        self,
        features: torch.Tensor,
        sketch_prototypes: torch.Tensor,
        photo_prototypes: torch.Tensor,
    ) -> torch.Tensor:
        """Compute L_MA for one set of features at one granularity.

        Args:
            features: ``(B, D)`` L2-normalised student features (of either domain).
            sketch_prototypes: ``(K, D)`` sketch centroids.
            photo_prototypes: ``(K, D)`` photo centroids (same ``K``).

        Returns:
            Scalar loss.

        Raises:
            ValueError: if the two prototype sets have different shapes.
        """
        if sketch_prototypes.shape != photo_prototypes.shape:
            raise ValueError(
                "sketch and photo prototypes must have the same shape (same number of clusters K),"
                f" got {tuple(sketch_prototypes.shape)} and {tuple(photo_prototypes.shape)}"
            )
        if features.ndim != 2 or features.shape[1] != sketch_prototypes.shape[1]:
            raise ValueError(
                f"features must be (B, {sketch_prototypes.shape[1]}), got {tuple(features.shape)}"
            )
        dist_sketch = self.assignment_distances(features, sketch_prototypes)
        dist_photo = self.assignment_distances(features, photo_prototypes)
        return (dist_sketch - dist_photo).pow(2).sum(1).mean()


def mutual_alignment_multi(
    loss: MutualAlignmentLoss,
    sketch_features: torch.Tensor,
    photo_features: torch.Tensor,
    sketch_prototypes: Sequence[torch.Tensor],
    photo_prototypes: Sequence[torch.Tensor],
) -> torch.Tensor:
    """Average of :class:`MutualAlignmentLoss` over both domains and every granularity.

    ``mean over g in granularities, f in {sketch_features, photo_features} of
    loss(f, sketch_prototypes[g], photo_prototypes[g])`` — the L_MA term of AMA's objective.

    Args:
        loss: the loss module.
        sketch_features: ``(B_s, D)`` student features of sketches.
        photo_features: ``(B_p, D)`` student features of photos.
        sketch_prototypes: ``G`` tensors ``(K_g, D)``.
        photo_prototypes: ``G`` tensors ``(K_g, D)``, same ``K_g`` as the sketch ones.

    Returns:
        Scalar loss.
    """
    if len(sketch_prototypes) != len(photo_prototypes):
        raise ValueError(
            f"got {len(sketch_prototypes)} sketch and {len(photo_prototypes)} photo prototype sets"
        )
    if len(sketch_prototypes) == 0:
        raise ValueError("need at least one granularity")
    terms = [
        loss(features, m_sketch, m_photo)
        for m_sketch, m_photo in zip(sketch_prototypes, photo_prototypes)
        for features in (sketch_features, photo_features)
    ]
    return torch.stack(terms).mean()
