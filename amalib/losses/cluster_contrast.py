"""Intra-modality cluster contrastive loss L_CC of AMA.

Yin et al., "Asymmetric Mutual Alignment for Unsupervised Zero-Shot Sketch-Based Image
Retrieval", AAAI 2024 (``docs/method.md``, loss 2). Supervised-contrastive style (Khosla et al.,
NeurIPS 2020) with k-means pseudo-labels of the teacher at several granularities and a teacher
confidence filter.

Unlike the authors' release, the multi-granularity positive mask is the *intersection* of the
cluster-equality masks of granularities ``0..g`` computed on samples and only then expanded to
crops (the release multiplied a mask that had already been tiled, which breaks the shapes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ClusterContrastLoss"]


class ClusterContrastLoss(nn.Module):
    """Cluster contrastive loss with granularity-intersection positives and a confidence filter.

    For a batch of ``B`` samples with ``C`` crops each (crop-major rows, crop 0 = first global):

    * anchors: the student features of crop 0 of every sample, ``s_i = student[i]``;
    * candidates: every other crop of every sample, rows ``B .. C*B - 1``; candidate ``j``
      belongs to sample ``j mod B``;
    * positives of anchor ``i`` at granularity ``g``: the candidates whose sample shares ``i``'s
      cluster at every granularity ``0..g`` (intersection of the cluster-equality masks);
    * ``l_g(i) = -mean_{p in P_g(i)} log softmax_j(s_i . s_j / temperature)`` with the softmax
      over all candidates ``j``;
    * confidence filter: ``q_g(i) = softmax_k(t_i . mu_{g,k} / prototype_temperature)`` from the
      teacher feature of the first global crop; anchor ``i`` is kept at ``g`` iff
      ``q_g(i)[cluster_g(i)] > confidence_threshold`` (and it has at least one positive);
    * ``L_g = mean_{kept i} l_g(i)`` (0 if nothing is kept), ``L = mean_g L_g``.

    Teacher features and prototypes are detached: only the student features get gradients.
    With no kept anchor the loss is ``student_features.sum() * 0`` — zero with a gradient path,
    never NaN.

    After each call :attr:`last_stats` holds detached float32 0-d tensors for logging, on the
    features' device (reading them as numbers waits for the device, so the training step never does):
    ``kept_fraction`` (mean over granularities of the fraction of anchors kept),
    ``kept_fraction_g{g}`` per granularity and ``mean_positives`` (mean number of positives of
    a kept anchor, over every granularity's kept anchors: a granularity that keeps none does
    not pull it to 0). :meth:`stats` returns them as floats.

    The step is free of host synchronisation. Cluster ids outside ``[0, K_g)`` raise a
    ``ValueError`` when ``cluster_ids`` is a CPU tensor (checked before it is copied to the
    device, as the trainer passes it); ids already on an accelerator are not range-checked.

    Args:
        temperature: temperature ``T`` of the contrastive softmax (release: 0.2).
        prototype_temperature: temperature of the teacher's soft assignment to the prototypes.
        confidence_threshold: minimum probability of the own cluster for an anchor to count.
    """

    def __init__(
        self,
        temperature: float = 0.2,
        prototype_temperature: float = 0.2,
        confidence_threshold: float = 0.2,
    ) -> None:
        super().__init__()
        if temperature <= 0 or prototype_temperature <= 0:
            raise ValueError("temperatures must be positive")
        self.temperature = float(temperature)
        self.prototype_temperature = float(prototype_temperature)
        self.confidence_threshold = float(confidence_threshold)
        self.last_stats: dict[str, torch.Tensor] = {}

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, prototype_temperature={self.prototype_temperature}, "
            f"confidence_threshold={self.confidence_threshold}"
        )

    def stats(self) -> dict[str, float]:
        """The statistics of the last forward call as floats (see the class docstring)."""
        return {k: float(v) for k, v in self.last_stats.items()}

    def forward(
        self,
        student_features: torch.Tensor,
        teacher_features: torch.Tensor,
        cluster_ids: torch.Tensor,
        prototypes: Sequence[torch.Tensor],
    ) -> torch.Tensor:
        """Compute L_CC for one domain.

        Args:
            student_features: ``(C * B, D)`` L2-normalised student features, crop-major (row
                ``c * B + i`` is crop ``c`` of sample ``i``; crop 0 is the first global crop).
            teacher_features: ``(B, D)`` L2-normalised teacher features of the first global crop.
            cluster_ids: ``(G, B)`` int64 cluster of each sample at each of ``G`` granularities
                (``(B,)`` is accepted for ``G = 1``). Pass CPU ids (as the trainer does): they
                are range-checked on the host, then copied to the device without blocking, so do
                not modify a pinned id buffer in place right after the call.
            prototypes: ``G`` tensors ``(K_g, D)``, the (L2-normalised) centroids.

        Returns:
            Scalar loss.
        """
        teacher_features = teacher_features.detach()
        batch = teacher_features.shape[0]
        if cluster_ids.ndim == 1:
            cluster_ids = cluster_ids.unsqueeze(0)
        n_gran = cluster_ids.shape[0]
        if len(prototypes) != n_gran:
            raise ValueError(f"got {len(prototypes)} prototype sets for {n_gran} granularities")
        dim = teacher_features.shape[1]
        for g, protos in enumerate(prototypes):
            if protos.ndim != 2 or protos.shape[1] != dim:
                raise ValueError(f"prototypes[{g}] must be (K, {dim}), got {tuple(protos.shape)}")
        if cluster_ids.device.type == "cpu":
            for g, ids in enumerate(cluster_ids):
                k = prototypes[g].shape[0]
                if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= k):
                    raise ValueError(
                        f"cluster ids at granularity {g} must be in [0, {k}), "
                        f"got range [{int(ids.min())}, {int(ids.max())}]"
                    )
        cluster_ids = cluster_ids.to(student_features.device, non_blocking=True).long()
        if student_features.ndim != 2 or student_features.shape[0] % batch != 0:
            raise ValueError(
                f"student_features must be (C*B, D) with B={batch}, got {tuple(student_features.shape)}"
            )
        if cluster_ids.shape[1] != batch:
            raise ValueError(f"cluster_ids must be (G, {batch}), got {tuple(cluster_ids.shape)}")
        n_crops = student_features.shape[0] // batch
        zero = student_features.sum() * 0.0
        if n_crops < 2 or n_gran == 0:
            self.last_stats = {"kept_fraction": zero.detach(), "mean_positives": zero.detach()}
            return zero

        anchors = student_features[:batch]  # (B, D)
        candidates = student_features[batch:]  # ((C-1)B, D)
        log_prob = F.log_softmax(anchors @ candidates.T / self.temperature, dim=1)

        total = zero
        stats: dict[str, torch.Tensor] = {}
        kept_fractions = []
        n_positives, n_kept = zero.detach(), zero.detach()  # over (anchor, granularity) pairs
        sample_mask = torch.ones(batch, batch, dtype=torch.bool, device=student_features.device)
        for g in range(n_gran):
            ids = cluster_ids[g]
            sample_mask = sample_mask & (ids[:, None] == ids[None, :])
            # Candidate j is a crop of sample j mod B: expand the sample mask to the crops.
            pos_mask = sample_mask.repeat(1, n_crops - 1)  # (B, (C-1)B)
            n_pos = pos_mask.sum(1)
            pos_log_prob = torch.where(pos_mask, log_prob, torch.zeros_like(log_prob)).sum(1)
            mean_log_prob_pos = pos_log_prob / n_pos.clamp_min(1)

            with torch.no_grad():
                protos = prototypes[g].detach().to(teacher_features)
                probs = F.softmax(teacher_features @ protos.T / self.prototype_temperature, dim=1)
                own = probs.gather(1, ids[:, None]).squeeze(1)
                keep = (own > self.confidence_threshold) & (n_pos > 0)
                kept = keep.to(mean_log_prob_pos.dtype)
                n_keep = keep.sum()  # an exact integer count, also for float16/bfloat16 features
            total = total + (-(kept * mean_log_prob_pos).sum() / n_keep.clamp_min(1))
            kept_fractions.append(n_keep.float() / batch)
            n_positives = n_positives + (n_pos * keep).sum().float()
            n_kept = n_kept + n_keep.float()
            stats[f"kept_fraction_g{g}"] = kept_fractions[-1]
        stats["kept_fraction"] = torch.stack(kept_fractions).mean()
        stats["mean_positives"] = n_positives / n_kept.clamp_min(1)
        self.last_stats = stats
        return total / n_gran
