"""The loss terms of a training step never wait for the GPU (issue 8: no host syncs in the step)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from amalib.losses.cluster_contrast import ClusterContrastLoss
from amalib.losses.dino import DINOLoss
from amalib.losses.mutual_alignment import MutualAlignmentLoss, mutual_alignment_multi
from amalib.losses.similarity_guidance import SimilarityGuidanceLoss


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_losses_forward_and_backward_without_synchronisation():
    dev, batch, n_crops, dim, out_dim = torch.device("cuda"), 8, 6, 16, 64
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(n_crops * batch, dim, generator=gen).to(dev).requires_grad_(True)
    logits = torch.randn(n_crops * batch, out_dim, generator=gen).to(dev).requires_grad_(True)
    teacher_logits = torch.randn(2 * batch, out_dim, generator=gen).to(dev)
    teacher = F.normalize(torch.randn(batch, dim, generator=gen), dim=1).to(dev)
    protos = [F.normalize(torch.randn(k, dim, generator=gen), dim=1).to(dev) for k in (4, 3)]
    # As the trainer passes them: CPU ids (range-checked on the host), pinned for the copy.
    ids = torch.stack([torch.randint(0, k, (batch,), generator=gen) for k in (4, 3)]).pin_memory()
    dino = DINOLoss(out_dim, n_global=2).to(dev)
    cc = ClusterContrastLoss(confidence_threshold=0.0)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        s = F.normalize(feats, dim=1)
        total = dino(logits, teacher_logits, epoch=0) + cc(s, teacher, ids, protos)
        total = total + mutual_alignment_multi(MutualAlignmentLoss(), s[:batch], s[batch:2 * batch],
                                               protos, protos)
        total = total + SimilarityGuidanceLoss()(s[:batch], teacher)
        total.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(total).item()
    assert feats.grad is not None and logits.grad is not None
    assert set(cc.stats()) >= {"kept_fraction", "mean_positives"}
