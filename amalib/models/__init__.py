"""Networks: timm ViT backbones, the DINO head, student/teacher with EMA, DINO checkpoints.

See ``docs/architecture.md``. Reference: DINO (Caron et al., ICCV 2021) as used by AMA
(Yin et al., AAAI 2024).
"""

from amalib.models.attention import cls_attention_maps
from amalib.models.checkpoint import load_dino_backbone, load_dino_weights, save_backbone
from amalib.models.head import DINOProjectionHead
from amalib.models.student_teacher import build_student_teacher, cosine_schedule, ema_update
from amalib.models.vit import create_vit
from amalib.models.wrapper import MultiCropWrapper

__all__ = [
    "DINOProjectionHead",
    "MultiCropWrapper",
    "build_student_teacher",
    "cls_attention_maps",
    "cosine_schedule",
    "create_vit",
    "ema_update",
    "load_dino_backbone",
    "load_dino_weights",
    "save_backbone",
]
