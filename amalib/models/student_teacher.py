"""Student/teacher pair for self-distillation: the teacher moves only by EMA of the student.

References: DINO (Caron et al., ICCV 2021: ``main_dino.py`` and ``utils.cosine_scheduler``) and
AMA (Yin et al., AAAI 2024), which keeps DINO's asymmetry: the student learns by gradients, the
teacher is an exponential moving average (momentum 0.999 per step) and never receives gradients;
drop-path is applied to the student only.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from amalib.models.head import DINOProjectionHead
from amalib.models.vit import create_vit
from amalib.models.wrapper import MultiCropWrapper

__all__ = ["build_student_teacher", "cosine_schedule", "ema_update"]


def build_student_teacher(
    *,
    arch: str,
    patch_size: int,
    img_size: int,
    out_dim: int,
    drop_path_rate: float = 0.1,
    hidden_dim: int = 2048,
    bottleneck_dim: int = 256,
    norm_last_layer: bool = True,
    use_bn: bool = False,
    stem: str = "patch",
    pos_embed_interpolation: str = "timm",
) -> tuple[MultiCropWrapper, MultiCropWrapper]:
    """Build a student (ViT + DINO head) and a teacher with identical initial weights.

    The teacher is built without drop-path, receives the student's state dict (drop-path has no
    parameters, so the two state dicts have the same keys) and is frozen with
    ``requires_grad_(False)``; update it with :func:`ema_update`.

    Args:
        arch: ViT preset (see :func:`amalib.models.vit.create_vit`).
        patch_size: Patch size in pixels.
        img_size: Size the position embedding is stored for (global crop size).
        out_dim: Head output width ``K`` (DINO/AMA: 65536).
        drop_path_rate: Student stochastic depth (teacher: 0).
        hidden_dim: Head MLP width.
        bottleneck_dim: Head bottleneck width.
        norm_last_layer: Freeze the head's last-layer weight norm.
        use_bn: BatchNorm in the head MLP.
        stem: ``"patch"`` or ``"cnn"`` (see :func:`amalib.models.vit.create_vit`).
        pos_embed_interpolation: ``"timm"`` or ``"dino"`` (see
            :func:`amalib.models.vit.create_vit`).

    Returns:
        ``(student, teacher)``, two :class:`MultiCropWrapper` in training mode.
    """

    def build(rate: float) -> MultiCropWrapper:
        backbone = create_vit(arch, patch_size=patch_size, img_size=img_size,
                              drop_path_rate=rate, stem=stem,
                              pos_embed_interpolation=pos_embed_interpolation)
        head = DINOProjectionHead(
            backbone.embed_dim,
            out_dim,
            hidden_dim=hidden_dim,
            bottleneck_dim=bottleneck_dim,
            norm_last_layer=norm_last_layer,
            use_bn=use_bn,
        )
        return MultiCropWrapper(backbone, head)

    student = build(drop_path_rate)
    teacher = build(0.0)
    teacher.load_state_dict(student.state_dict(), strict=True)
    teacher.requires_grad_(False)
    return student, teacher


def _unwrap(model: nn.Module) -> nn.Module:
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return model.module
    return model


@torch.no_grad()
def ema_update(student: nn.Module, teacher: nn.Module, momentum: float) -> None:
    """Move the teacher towards the student in place: ``t ← m·t + (1 − m)·s``.

    Applies to every parameter whose name exists in both models (a DDP wrapper around either is
    unwrapped); buffers present in both (e.g. BatchNorm statistics) are copied from the student.

    Args:
        student: The network trained by gradients.
        teacher: The EMA network (its parameters must not require gradients for the update to
            stay outside autograd; the update runs under ``torch.no_grad`` anyway).
        momentum: ``m`` in ``[0, 1]`` (AMA: 0.999 every step; DINO: cosine 0.996 → 1).
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    student_params = dict(_unwrap(student).named_parameters())
    teacher_params = dict(_unwrap(teacher).named_parameters())
    names = [name for name in teacher_params if name in student_params]
    if not names:
        raise ValueError("student and teacher share no parameter names; nothing to update")
    for name in names:
        if student_params[name].shape != teacher_params[name].shape:
            raise ValueError(
                f"parameter {name!r} has shape {tuple(student_params[name].shape)} in the "
                f"student and {tuple(teacher_params[name].shape)} in the teacher"
            )
    targets = [teacher_params[name] for name in names]
    sources = [student_params[name].detach() for name in names]
    torch._foreach_mul_(targets, momentum)
    torch._foreach_add_(targets, sources, alpha=1.0 - momentum)

    student_buffers = dict(_unwrap(student).named_buffers())
    for name, buffer in _unwrap(teacher).named_buffers():
        if name in student_buffers:
            buffer.copy_(student_buffers[name])


def cosine_schedule(
    base: float,
    final: float,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: int = 0,
    start_warmup: float = 0.0,
) -> np.ndarray:
    """Per-step schedule: linear warm-up, then half a cosine from ``base`` to ``final``.

    Same values as DINO's ``utils.cosine_scheduler``; use it for the learning rate, the weight
    decay or the EMA momentum (DINO: ``cosine_schedule(0.996, 1, epochs, steps)``).

    Args:
        base: Value at the end of warm-up (the start of the cosine).
        final: Value approached at the last step.
        epochs: Number of epochs.
        steps_per_epoch: Optimiser steps per epoch.
        warmup_epochs: Epochs of linear warm-up from ``start_warmup`` to ``base``.
        start_warmup: First value of the warm-up.

    Returns:
        Array of shape ``(epochs * steps_per_epoch,)``; entry ``s`` is the value at step ``s``.
    """
    if epochs < 0 or steps_per_epoch < 0 or warmup_epochs < 0:
        raise ValueError("epochs, steps_per_epoch and warmup_epochs must be non-negative")
    if warmup_epochs > epochs:
        raise ValueError(f"warmup_epochs ({warmup_epochs}) exceeds epochs ({epochs})")
    warmup_steps = warmup_epochs * steps_per_epoch
    warmup = np.linspace(start_warmup, base, warmup_steps) if warmup_steps > 0 else np.array([])
    steps = np.arange(epochs * steps_per_epoch - warmup_steps)
    cosine = final + 0.5 * (base - final) * (1 + np.cos(np.pi * steps / max(len(steps), 1)))
    return np.concatenate((warmup, cosine)).astype(np.float64)
