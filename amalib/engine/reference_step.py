"""A plain reference for one AMA training step, written the straightforward way.

:meth:`amalib.engine.trainer.Trainer.compute_losses` is the fused path: one teacher forward on
the global crops of both domains concatenated per resolution, one student forward in which the
sketches and photos of one resolution share a backbone call, every loss term from those
features. This module computes the same objective (Yin et al., "Asymmetric Mutual Alignment for
Unsupervised Zero-Shot Sketch-Based Image Retrieval", AAAI 2024; ``METHOD.md``) without any of
those tricks, so that the fused path can be checked against it and timed against it:

* per domain, per crop: one backbone call and one head call (no concatenation across crops or
  domains), always in float32 (no autocast);
* L_SD as in DINO's ``main_dino.py``: a Python loop over (teacher global ``g``, student crop
  ``c != g``) pairs of cross-entropies between the centred, sharpened teacher distribution and
  the student log-softmax, averaged over the pairs; the centre is then updated with
  :meth:`amalib.losses.DINOLoss.update_center` (same state, same EMA as the trainer);
* L_CC, L_MA and L_SG: one call of the trainer's loss modules per domain and granularity.

It uses the trainer's modules and state (student, teacher, DINO centres, cluster assignments and
prototypes), never a copy, and mutates exactly what the fused path mutates (the DINO centres).
To compare the two paths on the same inputs, snapshot the centres before the first call and
restore them before the second.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from amalib.losses.mutual_alignment import mutual_alignment_rows

__all__ = ["dino_loss_pairwise", "reference_losses", "reference_train_step"]


def dino_loss_pairwise(
    student_outputs: list[torch.Tensor],
    teacher_outputs: list[torch.Tensor],
    center: torch.Tensor,
    teacher_temp: float,
    student_temp: float,
) -> torch.Tensor:
    """DINO's self-distillation loss as a loop over crop pairs (``DINOLoss`` in DINO's code).

    ``L = mean over (g, c), c != g, of mean_i -sum_k softmax((t_gi - center) / teacher_temp)_k
    * log_softmax(s_ci / student_temp)_k``.

    Args:
        student_outputs: ``C`` tensors ``(B, K)``, the student head outputs of every crop (global
            crops first).
        teacher_outputs: ``n_global`` tensors ``(B, K)``, the teacher head outputs of the global
            crops.
        center: ``(1, K)`` centre of the teacher outputs (not modified here).
        teacher_temp: Teacher temperature at this epoch.
        student_temp: Student temperature.

    Returns:
        Scalar loss (float32 or wider).
    """
    total, n_terms = 0.0, 0
    for g, teacher in enumerate(teacher_outputs):
        q = F.softmax((teacher.detach().float() - center.float()) / teacher_temp, dim=-1)
        for c, student in enumerate(student_outputs):
            if c == g:
                continue
            log_p = F.log_softmax(student.float() / student_temp, dim=-1)
            total = total + torch.sum(-q * log_p, dim=-1).mean()
            n_terms += 1
    return total / n_terms


def reference_losses(trainer, batch: dict, epoch: int) -> dict[str, torch.Tensor]:
    """Every active loss term of one AMA step, computed per domain and per crop.

    Same keys, same math and same module state as ``trainer.compute_losses(batch, epoch)``:
    ``sd_<domain>`` always, ``cc`` / ``ma`` / ``sg`` when their weight at ``epoch`` is non-zero
    (``cc`` and ``sg`` are sums over the domains, ``ma`` the mean over granularities and the two
    domains' features). Updates the DINO centres exactly once per domain, as the fused path does.

    Args:
        trainer: A :class:`amalib.engine.trainer.Trainer` (its ``clusters`` must be filled, e.g.
            by ``trainer.cluster(epoch)``, when CC or MA is active).
        batch: ``{domain: (crops, indices)}`` with ``crops`` a crop-major list of ``C`` tensors
            ``(B, 3, H_c, W_c)``, global crops first, and ``indices`` ``(B,)`` int64 dataset
            positions (for the cluster assignments).
        epoch: 0-based epoch (teacher temperature and the objective schedule).

    Returns:
        ``{term: scalar tensor}``; student terms carry gradients to the student parameters.
    """
    weights = trainer.schedule.weights(epoch)
    device = trainer.device
    n_global = trainer.n_global
    student, teacher = trainer.student, trainer.teacher
    s_norm: dict[str, torch.Tensor] = {}  # (C * B, D), crop-major
    t_first: dict[str, torch.Tensor] = {}  # (B, D), first global crop
    losses: dict[str, torch.Tensor] = {}
    for d in trainer.domains:
        crops = [c.to(device).float() for c in batch[d][0]]
        s_feats, s_outs = [], []
        for crop in crops:
            feat = student.backbone(crop)
            s_feats.append(feat)
            s_outs.append(student.head(feat))
        t_feats, t_outs = [], []
        with torch.no_grad():
            for crop in crops[:n_global]:
                feat = teacher.backbone(crop)
                t_feats.append(feat)
                t_outs.append(teacher.head(feat))
        dino = trainer.dino_losses[d]
        losses[f"sd_{d}"] = dino_loss_pairwise(
            s_outs, t_outs, dino.center, dino.teacher_temp(epoch), dino.student_temp
        )
        dino.update_center(torch.cat(t_outs))
        s_norm[d] = torch.cat([F.normalize(f, dim=1) for f in s_feats])
        t_first[d] = F.normalize(t_feats[0], dim=1)

    if weights["cc"] > 0:
        cc = 0.0
        for d in trainer.domains:
            results = trainer.clusters[d]
            ids = torch.stack([r.assignments[batch[d][1]] for r in results])  # range-checked
            protos = [r.centroids.to(device) for r in results]
            cc = cc + trainer.cc_loss(s_norm[d], t_first[d], ids, protos)
        losses["cc"] = cc
    if weights["ma"] > 0:
        terms = []
        for r_sketch, r_photo in zip(trainer.clusters["sketch"], trainer.clusters["photo"]):
            for d in ("sketch", "photo"):
                rows = mutual_alignment_rows(trainer.ma_crops, batch[d][0][0].shape[0], n_global)
                terms.append(trainer.ma_loss(s_norm[d][:rows], r_sketch.centroids.to(device),
                                             r_photo.centroids.to(device)))
        losses["ma"] = sum(terms) / len(terms)
    if weights["sg"] > 0:
        sg = 0.0
        for d in trainer.domains:
            b = batch[d][0][0].shape[0]
            sg = sg + trainer.sg_loss(s_norm[d][:b], t_first[d])
        losses["sg"] = sg
    return losses


def reference_train_step(trainer, batch: dict, epoch: int, global_step: int) -> dict:
    """``trainer.train_step`` with :func:`reference_losses` in place of the fused forward.

    The backward pass, gradient clipping, optimiser step and EMA update are the trainer's own
    code, so timing this against ``trainer.train_step`` isolates the forward/loss layout.

    Returns:
        ``{"total": ..., <term>: ...}`` detached, as ``trainer.train_step``.
    """
    had_own = "compute_losses" in vars(trainer)
    previous = vars(trainer).get("compute_losses")
    trainer.compute_losses = functools.partial(reference_losses, trainer)
    try:
        return trainer.train_step(batch, epoch, global_step)
    finally:
        if had_own:
            trainer.compute_losses = previous
        else:
            del trainer.compute_losses
