"""One AMA training step: the forward pass of both networks, then every loss term of the batch.

:func:`ama_losses` is the objective, written top to bottom (Yin et al., AAAI 2024;
``docs/method.md``): from the student's and teacher's outputs of one batch to the dictionary of
terms and their weighted total. It is pure apart from the state its loss modules keep (each
:class:`~amalib.losses.DINOLoss` moves its centre; the cluster contrastive loss records what its
confidence filter kept). :func:`forward` runs the networks the way the engine does: the crops of
one resolution from both domains go through one backbone call. The engine
(:meth:`amalib.train.trainer.Trainer.train_step`) wraps the two with autocast, gradient scaling,
DDP, clipping, the schedules and the teacher's EMA; notebook 05 prints and runs these very
functions.

Layout of every tensor here: a domain's rows are crop-major, row ``c * B + i`` is crop ``c`` of
its sample ``i``; the teacher sees the ``n_global`` global crops, the student every crop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from amalib.losses.cluster_contrast import ClusterContrastLoss
from amalib.losses.mutual_alignment import (
    MutualAlignmentLoss,
    mutual_alignment_multi,
    mutual_alignment_rows,
)
from amalib.losses.similarity_guidance import SimilarityGuidanceLoss
from amalib.train.objective import ObjectiveSchedule

__all__ = ["Objective", "Outputs", "ama_losses", "forward"]


@dataclass
class Objective:
    """AMA's loss modules and the schedule that weighs them (built from a config by the Trainer).

    Attributes:
        schedule: Which term is on at which epoch, and with what weight.
        dino: ``{domain: DINOLoss}``: self-distillation per domain (the same object for both
            domains when ``loss.dino.center`` is ``shared``).
        cc: The cluster contrastive loss with its confidence filter.
        ma: The mutual alignment ("distance of distance") loss.
        sg: The similarity guidance loss.
        ma_crops: Which student rows L_MA uses (``loss.mutual_alignment.crops``).
    """

    schedule: ObjectiveSchedule
    dino: Mapping[str, nn.Module]
    cc: ClusterContrastLoss
    ma: MutualAlignmentLoss
    sg: SimilarityGuidanceLoss
    ma_crops: str = "first_global"


@dataclass
class Outputs:
    """One network's outputs for a batch, per domain: CLS features and head logits.

    Attributes:
        features: ``{domain: (n_crops * B, D)}`` backbone CLS features, crop-major, float32.
        logits: ``{domain: (n_crops * B, K)}`` DINO-head outputs, crop-major, float32.
    """

    features: dict[str, torch.Tensor]
    logits: dict[str, torch.Tensor]


def forward(student: nn.Module, teacher: nn.Module, crops: Mapping[str, Sequence[torch.Tensor]],
            n_global: int, *, autocast=None) -> tuple[Outputs, Outputs]:
    """The student on every crop and the teacher (no gradient) on the global crops.

    Crop ``c`` of every domain goes through the networks as one tensor (sketches and photos of
    one resolution share a backbone call); the outputs are split back per domain.

    Args:
        student: The student (or its DDP/compiled wrapper): a list of crops -> (features, logits).
        teacher: The teacher, same interface.
        crops: ``{domain: [C tensors (B, 3, H_c, W_c)]}``, global crops first, on the device.
        n_global: How many of the crops are global (the teacher's).
        autocast: A context manager for mixed precision (``None``: float32).

    Returns:
        ``(student_outputs, teacher_outputs)``, float32.
    """
    domains = list(crops)
    n_crops = len(crops[domains[0]])
    b = crops[domains[0]][0].shape[0]
    sizes = {d: crops[d][0].shape[0] for d in domains}  # shapes: host values, no sync
    if len(set(sizes.values())) > 1:
        raise RuntimeError(f"the fused step needs equal batches per domain, got {sizes}; the "
                           "training sets must replace unreadable images (replace_unreadable)")
    fused = [torch.cat([crops[d][c] for d in domains]) for c in range(n_crops)]
    with autocast if autocast is not None else nullcontext():
        with torch.no_grad():
            t_feat, t_out = teacher(fused[:n_global])
        s_feat, s_out = student(fused)

    def split(x: torch.Tensor, n: int) -> dict[str, torch.Tensor]:
        x = x.float().view(n, len(domains), b, -1)
        return {d: x[:, k].reshape(n * b, -1) for k, d in enumerate(domains)}

    return (Outputs(split(s_feat, n_crops), split(s_out, n_crops)),
            Outputs(split(t_feat, n_global), split(t_out, n_global)))


def ama_losses(student: Outputs, teacher: Outputs, indices: Mapping[str, torch.Tensor], *,
               epoch: int, objective: Objective, clusters: Mapping[str, Sequence] | None = None,
               prototypes: Mapping[str, Sequence[torch.Tensor]] | None = None,
               ) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
    """AMA's loss terms for one batch and their weighted total.

    ``L = 2 L_SD^sketch + L_SD^photo + w_cc(e) (L_CC^sketch + L_CC^photo) + 0.1 L_MA
    + 0.02 (L_SG^sketch + L_SG^photo)`` with the release's weights (``objective.schedule`` holds
    them). A term is computed only at epochs where its weight is positive.

    Args:
        student: The student's outputs on every crop (:func:`forward`).
        teacher: The teacher's outputs on the global crops.
        indices: ``{domain: (B,)}`` positions of the batch's images in the domain's training
            list; they look up the k-means assignments (no label is ever read).
        epoch: 0-based epoch (the weights and the teacher temperature).
        objective: The loss modules and their schedule.
        clusters: ``{domain: [ClusterResult per granularity]}`` (assignments on the CPU,
            indexed by training-list position); needed when CC is on.
        prototypes: ``{domain: [(K_g, D) centroids on the device]}``; needed when CC or MA is on.

    Returns:
        ``(terms, total, stats)``: ``terms`` maps ``sd_sketch``, ``sd_photo`` and, when on,
        ``cc``, ``ma``, ``sg`` to scalar tensors (``cc`` and ``sg`` summed over the domains);
        ``total`` is their weighted sum; ``stats`` holds ``cc_kept_<domain>``, the share of the
        batch the confidence filter kept (device tensors, read without a host sync).
    """
    weights = objective.schedule.weights(epoch)
    domains = list(student.features)
    b = len(indices[domains[0]])
    terms: dict[str, torch.Tensor] = {}
    stats: dict[str, torch.Tensor] = {}

    # L_SD: DINO's self-distillation in each domain (each call then moves its centre).
    for d in domains:
        terms[f"sd_{d}"] = objective.dino[d](student.logits[d], teacher.logits[d], epoch)

    # The alignment terms compare unit vectors: the student's of every crop, the teacher's of
    # each sample's first global crop.
    s_unit = {d: F.normalize(student.features[d], dim=1) for d in domains}
    t_unit = {d: F.normalize(teacher.features[d][:b], dim=1) for d in domains}

    # L_CC: crops of the samples in a sample's cluster (at every granularity) are its positives;
    # only anchors the teacher assigns confidently to their own cluster count.
    if weights["cc"] > 0:
        cc = []
        for d in domains:
            # CPU ids: the loss range-checks them on the host before its (pinned) copy.
            ids = torch.stack([r.assignments[indices[d]] for r in clusters[d]])
            if prototypes[d][0].is_cuda:
                ids = ids.pin_memory()
            cc.append(objective.cc(s_unit[d], t_unit[d], ids, prototypes[d]))
            stats[f"cc_kept_{d}"] = objective.cc.last_stats["kept_fraction"]
        terms["cc"] = sum(cc)

    # L_MA: "distance of distance": a sample's distances to the sketch prototypes and to the
    # photo prototypes should agree, in both domains and at every granularity.
    if weights["ma"] > 0:
        rows = mutual_alignment_rows(objective.ma_crops, b, teacher.features[domains[0]].shape[0]
                                     // b)
        terms["ma"] = mutual_alignment_multi(
            objective.ma, s_unit["sketch"][:rows], s_unit["photo"][:rows],
            prototypes["sketch"], prototypes["photo"],
        )

    # L_SG: the student's distances within the batch follow the teacher's similarities.
    if weights["sg"] > 0:
        terms["sg"] = sum(objective.sg(s_unit[d][:b], t_unit[d]) for d in domains)

    return terms, objective.schedule.combine(terms, epoch), stats
