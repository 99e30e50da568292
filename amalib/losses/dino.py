"""DINO self-distillation loss with centring, sharpening and a teacher-temperature warm-up.

Reference: Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021
(``DINOLoss`` in ``main_dino.py``); used per domain as L_SD by AMA (Yin et al., AAAI 2024).
Unlike AMA's release, the centre's batch mean is all-reduced across processes when a process
group is initialised, so multi-process training matches single-process training.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

__all__ = ["DINOLoss"]


class DINOLoss(nn.Module):
    """Cross-entropy between centred, sharpened teacher targets and student predictions.

    For teacher global crop ``g`` and student crop ``c ≠ g`` (same sample ``i``):
    ``ℓ = −Σ_k softmax((t_gi − center)/τ_t)_k · log_softmax(s_ci/τ_s)_k``; the loss is the mean
    over samples and over all such ``(g, c)`` pairs. The centre is then updated as an EMA of the
    teacher outputs' batch mean: ``center ← m·center + (1 − m)·mean_i t_i``.

    Args:
        out_dim: Head output width ``K``.
        teacher_temp: Teacher temperature after warm-up (0.04).
        warmup_teacher_temp: Teacher temperature at epoch 0.
        warmup_teacher_temp_epochs: Epochs of linear warm-up from ``warmup_teacher_temp`` to
            ``teacher_temp``.
        n_epochs: Length of the precomputed schedule; later epochs use its last value.
        student_temp: Student temperature (0.1).
        center_momentum: EMA momentum of the centre (0.9).
        n_global: Number of global crops, which are the first crops of the student output and the
            only crops of the teacher output.

    Shapes:
        ``student_output``: ``(C * B, K)`` crop-major logits of all ``C`` crops;
        ``teacher_output``: ``(n_global * B, K)`` crop-major logits of the global crops;
        returns a scalar. ``center``: buffer ``(1, K)``, saved in ``state_dict``.
    """

    center: torch.Tensor

    def __init__(
        self,
        out_dim: int,
        *,
        teacher_temp: float = 0.04,
        warmup_teacher_temp: float = 0.04,
        warmup_teacher_temp_epochs: int = 0,
        n_epochs: int = 100,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        n_global: int = 2,
    ) -> None:
        super().__init__()
        if n_global < 1:
            raise ValueError(f"n_global must be >= 1, got {n_global}")
        if not 0 <= warmup_teacher_temp_epochs <= n_epochs:
            raise ValueError(
                f"warmup_teacher_temp_epochs ({warmup_teacher_temp_epochs}) must be in "
                f"[0, n_epochs={n_epochs}]"
            )
        self.out_dim = out_dim
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.n_global = n_global
        self.teacher_temp_schedule = np.concatenate(
            (
                np.linspace(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs),
                np.full(n_epochs - warmup_teacher_temp_epochs, teacher_temp),
            )
        )
        self.register_buffer("center", torch.zeros(1, out_dim))

    def teacher_temp(self, epoch: int) -> float:
        """Teacher temperature at ``epoch`` (the last scheduled value after the schedule ends)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if len(self.teacher_temp_schedule) == 0:
            raise ValueError("empty teacher-temperature schedule (n_epochs=0)")
        return float(self.teacher_temp_schedule[min(epoch, len(self.teacher_temp_schedule) - 1)])

    def forward(
        self, student_output: torch.Tensor, teacher_output: torch.Tensor, epoch: int
    ) -> torch.Tensor:
        """Loss for one batch; updates the centre afterwards (see class docstring for shapes)."""
        if teacher_output.shape[0] % self.n_global:
            raise ValueError(
                f"teacher_output has {teacher_output.shape[0]} rows, not a multiple of "
                f"n_global={self.n_global}"
            )
        batch = teacher_output.shape[0] // self.n_global
        if batch == 0 or student_output.shape[0] % batch:
            raise ValueError(
                f"student_output rows ({student_output.shape[0]}) must be a multiple of the batch "
                f"size {batch} implied by teacher_output"
            )
        n_crops = student_output.shape[0] // batch
        if n_crops < self.n_global:
            raise ValueError(f"student has {n_crops} crops, fewer than n_global={self.n_global}")

        # At least float32, also under autocast (K = 65536 logits at temperature 0.04).
        dtype = torch.promote_types(
            torch.promote_types(student_output.dtype, teacher_output.dtype), torch.float32
        )
        with torch.autocast(device_type=student_output.device.type, enabled=False):
            temp = self.teacher_temp(epoch)
            centred = teacher_output.detach().to(dtype) - self.center.to(dtype)
            teacher_probs = F.softmax(centred / temp, dim=-1).reshape(self.n_global, batch, -1)
            student_log_probs = F.log_softmax(student_output.to(dtype) / self.student_temp, dim=-1)
            student_log_probs = student_log_probs.reshape(n_crops, batch, -1)

            # cross_entropy[g, c] = mean_i −Σ_k q_gik · log p_cik
            cross_entropy = -torch.einsum("gik,cik->gc", teacher_probs, student_log_probs) / batch
            same_view = torch.eye(
                self.n_global, n_crops, dtype=torch.bool, device=cross_entropy.device
            )
            # Mean over the n_global * n_crops - n_global cross-view pairs; a masked sum over a
            # count known on the host (masked_select would synchronise with the device).
            n_pairs = self.n_global * n_crops - self.n_global
            loss = cross_entropy.masked_fill(same_view, 0.0).sum() / n_pairs

        self.update_center(teacher_output)
        return loss

    @torch.no_grad()
    def update_center(self, teacher_output: torch.Tensor) -> None:
        """EMA of the teacher outputs' batch mean, all-reduced over processes if distributed.

        Args:
            teacher_output: ``(n, K)`` teacher logits of this process.
        """
        teacher_output = teacher_output.detach().to(self.center.dtype)
        # Sum and count in one all-reduce: the global mean is right even for uneven batches.
        totals = torch.cat(
            (
                teacher_output.sum(dim=0, keepdim=True),
                teacher_output.new_full((1, 1), teacher_output.shape[0]),
            ),
            dim=1,
        )
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(totals)
        batch_center = totals[:, :-1] / totals[:, -1:]
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)
