"""AMA's loss terms as pure modules of tensors (features, prototypes, assignments).

- :class:`DINOLoss` — self-distillation per domain (L_SD).
- :class:`ClusterContrastLoss` — confidence-filtered intra-modality cluster contrast (L_CC).
- :class:`MutualAlignmentLoss` — cross-modal "distance of distance" alignment (L_MA).
- :class:`SimilarityGuidanceLoss` — STML's relaxed contrastive loss (L_SG).
"""

from amalib.losses.cluster_contrast import ClusterContrastLoss
from amalib.losses.dino import DINOLoss
from amalib.losses.mutual_alignment import MutualAlignmentLoss, mutual_alignment_multi
from amalib.losses.similarity_guidance import SimilarityGuidanceLoss

__all__ = [
    "ClusterContrastLoss",
    "DINOLoss",
    "MutualAlignmentLoss",
    "SimilarityGuidanceLoss",
    "mutual_alignment_multi",
]
