"""Plain references for one AMA training step, used by the tests to check the engine.

:func:`amalib.train.step.ama_losses` after :func:`amalib.train.step.forward` is the fused path:
one teacher forward on the global crops of both domains concatenated per resolution, one
student forward in which the sketches and photos of one resolution share a backbone call, every
loss term from those features. This module computes the same objective (Yin et al.,
"Asymmetric Mutual Alignment for Unsupervised Zero-Shot Sketch-Based Image Retrieval", AAAI
2024; ``docs/method.md``) without any of those tricks, so that the fused path can be checked against
it and timed against it (``benchmarks/bench_train_step.py``):

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

:func:`ama_step` is the other reference: the whole training step — forwards, every loss, the
weighted sum, backward, optimiser step, EMA — written out in one function from amalib's public
loss modules, with the engine's batch layout (so it equals ``Trainer.train_step`` exactly,
batch-norm statistics included); ``tests/train/test_ama_step.py`` checks it against the engine.
These live in ``tests/``, not in the package: the package has one step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from amalib.losses.mutual_alignment import mutual_alignment_rows
from amalib.models.student_teacher import ema_update

__all__ = ["ama_step", "dino_loss_pairwise", "reference_losses", "reference_train_step"]


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
        trainer: A :class:`amalib.train.trainer.Trainer` (its ``clusters`` must be filled, e.g.
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
    def losses(batch: dict, epoch: int):
        terms = reference_losses(trainer, batch, epoch)
        return terms, trainer.schedule.combine(terms, epoch), {}

    had_own = "compute_losses" in vars(trainer)
    previous = vars(trainer).get("compute_losses")
    trainer.compute_losses = losses
    try:
        return trainer.train_step(batch, epoch, global_step)[0]
    finally:
        if had_own:
            trainer.compute_losses = previous
        else:
            del trainer.compute_losses


def ama_step(trainer, batch: dict, epoch: int, global_step: int) -> dict[str, torch.Tensor]:
    """One AMA training step in plain code: what ``Trainer.train_step`` computes, in one place.

    The networks, loss modules, optimiser and schedules
    are the trainer's (``trainer.dino_losses``: :class:`~amalib.losses.DINOLoss` per domain,
    ``trainer.cc_loss``: :class:`~amalib.losses.ClusterContrastLoss`, ``trainer.ma_loss``:
    :class:`~amalib.losses.MutualAlignmentLoss`, ``trainer.sg_loss``:
    :class:`~amalib.losses.SimilarityGuidanceLoss`); float32, one process (the engine adds
    autocast, a gradient scaler and DDP on GPUs).

    Args:
        trainer: A :class:`amalib.train.Trainer` (``trainer.cluster(epoch)`` done when CC or MA
            is on at ``epoch``).
        batch: ``{"sketch": (crops, indices), "photo": (crops, indices)}`` from
            ``trainer.batches(epoch)``.
        epoch: 0-based epoch (the objective's weights and the teacher temperature).
        global_step: Step index into the learning-rate and teacher-momentum schedules.

    Returns:
        ``{"total": ..., "sd_sketch": ..., "sd_photo": ..., ["cc", "ma", "sg"]}``, detached.
    """
    if trainer.use_amp:
        raise NotImplementedError("ama_step is the float32 reference; the engine handles AMP")
    student, teacher = trainer.student, trainer.teacher
    weights = trainer.schedule.weights(epoch)  # e.g. {"sd_sketch": 2, "sd_photo": 1, "cc": 0.5, ...}
    domains = ("sketch", "photo")
    n_global = trainer.n_global
    b = batch["sketch"][0][0].shape[0]  # B sketches and B photos, drawn independently

    # 1. Inputs. Crop c of the B sketches and of the B photos form one tensor (2B, 3, H, W):
    #    the networks see sketches and photos together, as the engine does.
    crops = [torch.cat([s, p]).to(trainer.device)
             for s, p in zip(batch["sketch"][0], batch["photo"][0])]
    n_crops = len(crops)

    # 2. Teacher: the global crops only, no gradient. Train mode for the forward, as in DINO
    #    (a batch-norm layer normalises with this batch's statistics); nothing else changes.
    teacher.train()
    with torch.no_grad():
        t_feat, t_out = teacher(crops[:n_global])  # CLS features, head logits: (n_global*2B, .)
    teacher.eval()

    # 3. Student: every crop (global and local), with gradients.
    student.train()
    s_feat, s_out = student(crops)  # (n_crops * 2B, D), (n_crops * 2B, K)

    def rows_of(x: torch.Tensor, n: int, domain: int) -> torch.Tensor:
        """The rows of one domain, crop-major: row c * B + i is crop c of its sample i."""
        return x.float().view(n, 2, b, -1)[:, domain].reshape(n * b, -1)

    # 4. The loss terms.
    losses: dict[str, torch.Tensor] = {}
    s_norm, t_first = {}, {}
    for k, d in enumerate(domains):
        # L_SD: DINO's self-distillation, per domain (updates the domain's centre afterwards).
        losses[f"sd_{d}"] = trainer.dino_losses[d](rows_of(s_out, n_crops, k),
                                                   rows_of(t_out, n_global, k), epoch)
        s_norm[d] = F.normalize(rows_of(s_feat, n_crops, k), dim=1)  # student, every crop
        t_first[d] = F.normalize(rows_of(t_feat, n_global, k)[:b], dim=1)  # teacher, 1st crop
    if weights["cc"] > 0:  # L_CC: crops of a sample's cluster are its positives
        losses["cc"] = 0.0
        for d in domains:
            clusters = trainer.clusters[d]  # one k-means result per granularity
            ids = torch.stack([r.assignments[batch[d][1]] for r in clusters])  # (G, B)
            prototypes = [r.centroids.to(trainer.device) for r in clusters]
            losses["cc"] = losses["cc"] + trainer.cc_loss(s_norm[d], t_first[d], ids, prototypes)
    if weights["ma"] > 0:  # L_MA: distance of distance, both domains, every granularity
        rows = mutual_alignment_rows(trainer.ma_crops, b, n_global)  # global-crop rows
        terms = [trainer.ma_loss(s_norm[d][:rows], sketch.centroids.to(trainer.device),
                                 photo.centroids.to(trainer.device))
                 for sketch, photo in zip(trainer.clusters["sketch"], trainer.clusters["photo"])
                 for d in domains]
        losses["ma"] = torch.stack(terms).mean()
    if weights["sg"] > 0:  # L_SG: student distances follow the teacher's similarities
        losses["sg"] = sum(trainer.sg_loss(s_norm[d][:b], t_first[d]) for d in domains)

    # 5. The objective: the weighted sum of the active terms.
    total = sum(weights[term] * value for term, value in losses.items() if weights[term] > 0)

    # 6. Backward and optimiser step on the student (learning rate from the schedule; no weight
    #    decay on biases and norms: the second parameter group).
    for i, group in enumerate(trainer.optimizer.param_groups):
        group["lr"] = float(trainer.lr_schedule[global_step])
        if i == 0:
            group["weight_decay"] = trainer.cfg["train"]["weight_decay"]
    trainer.optimizer.zero_grad(set_to_none=True)
    total.backward()
    if epoch < int(trainer.cfg["train"].get("freeze_backbone_epochs", 0)):
        # Head warm-up: while the DINO head is still random, only the head learns; the
        # backbone's gradients are dropped, so it keeps its starting weights.
        for p in student.backbone.parameters():
            p.grad = None
    if trainer.cfg["train"].get("clip_grad"):
        torch.nn.utils.clip_grad_norm_(student.parameters(), trainer.cfg["train"]["clip_grad"])
    trainer.optimizer.step()

    # 7. The teacher follows the student: theta_t <- m * theta_t + (1 - m) * theta_s; buffers
    #    (batch-norm running statistics, moved by the student's train-mode forward) are copied.
    ema_update(student, teacher, float(trainer.momentum_schedule[global_step]))
    return {"total": total.detach(), **{k: v.detach() for k, v in losses.items()}}
