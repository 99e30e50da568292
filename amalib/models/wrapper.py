"""Multi-crop wrapper: one backbone pass per crop resolution, one head pass for all crops.

Reference: ``MultiCropWrapper`` in DINO's ``utils.py`` (Caron et al., ICCV 2021). Crops are
crop-major (see ``docs/architecture.md``): a list of ``C`` tensors ``(B, 3, H_c, W_c)``, global
crops first; outputs are concatenated in that order, so row ``c * B + i`` is crop ``c`` of sample
``i``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MultiCropWrapper", "group_consecutive_resolutions"]


def group_consecutive_resolutions(crops: Sequence[torch.Tensor]) -> list[tuple[int, int]]:
    """Split crop indices into runs of consecutive crops with the same spatial size.

    DINO groups by the last dimension with ``torch.unique_consecutive``; grouping by ``(H, W)``
    gives the same runs for square crops and stays correct for non-square ones.

    Args:
        crops: Sequence of tensors ``(B, 3, H_c, W_c)``.

    Returns:
        ``[(start, end), ...]`` half-open index ranges covering ``range(len(crops))``.
    """
    runs: list[tuple[int, int]] = []
    start = 0
    for index in range(1, len(crops) + 1):
        if index == len(crops) or crops[index].shape[-2:] != crops[start].shape[-2:]:
            runs.append((start, index))
            start = index
    return runs


class MultiCropWrapper(nn.Module):
    """Run a backbone on every crop of a multi-crop batch and a projection head on the result.

    Consecutive crops of the same resolution are concatenated into a single backbone call (the
    two 224 px globals are one call, the eight 96 px locals another), which is much faster than
    one call per crop; the head (whose output does not depend on the resolution) runs once.

    Args:
        backbone: Maps images ``(n, 3, H, W)`` to features ``(n, D)``.
        head: Maps features ``(n, D)`` to outputs ``(n, K)``.

    Shapes:
        ``forward(crops)`` with ``crops`` a list of ``C`` tensors ``(B, 3, H_c, W_c)`` (or one
        tensor ``(B, 3, H, W)``) returns ``(features, head_outputs)`` of shapes ``(C * B, D)`` and
        ``(C * B, K)`` in crop-major order (row ``c * B + i`` is crop ``c`` of sample ``i``).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward_backbone(self, crops: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """Backbone features ``(C * B, D)`` of all crops, crop-major, without the head."""
        if isinstance(crops, torch.Tensor):
            crops = [crops]
        if len(crops) == 0:
            raise ValueError("MultiCropWrapper needs at least one crop")
        outputs = []
        for start, end in group_consecutive_resolutions(crops):
            group = crops[start] if end - start == 1 else torch.cat(list(crops[start:end]))
            out = self.backbone(group)
            if isinstance(out, tuple):
                out = out[0]
            outputs.append(out)
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)

    def forward(
        self, crops: torch.Tensor | Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(features (C*B, D), head_outputs (C*B, K))`` for crop-major ``crops``."""
        features = self.forward_backbone(crops)
        return features, self.head(features)
