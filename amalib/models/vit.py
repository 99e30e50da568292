"""Vision Transformer backbones (timm) that return the CLS embedding, in DINO's key layout.

AMA (Yin et al., AAAI 2024) starts student and teacher from a DINO ViT (Caron et al., "Emerging
Properties in Self-Supervised Vision Transformers", ICCV 2021). timm's ``VisionTransformer`` with
``num_classes=0`` and token pooling has exactly the parameter names of DINO's
``vision_transformer.py`` (``cls_token``, ``pos_embed``, ``patch_embed.proj.*``,
``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*``, ``norm.*``), so the official
``dino_vit*_pretrain.pth`` state dicts load with ``strict=True``.

``stem="cnn"`` swaps the patch projection for a small convolutional stem (one 3x3 convolution,
batch norm, ReLU and 2x2 max pooling per halving of the resolution, then a 1x1 projection): the
token grid, the CLS token and the blocks stay, as in the ViT paper's hybrids (Dosovitskiy et al.,
ICLR 2021). It is there for the embedded benchmark, where a plain ViT trained from scratch on a
CPU budget learns nothing that transfers (README, Results); DINO's released weights are all
``stem="patch"``.

``dynamic_img_size=True`` lets one model take 224 px global crops and 96 px local crops: the
position embedding is resampled (bicubic, timm's ``resample_abs_pos_embed``) to the patch grid of
each input. timm's attention uses ``F.scaled_dot_product_attention`` (fused kernels on CUDA) and
works under ``torch.autocast`` with bf16; nothing here is device specific.
"""

from __future__ import annotations

from dataclasses import dataclass

from timm.layers import PatchEmbed
from timm.models.vision_transformer import VisionTransformer
from torch import nn

__all__ = ["STEMS", "VIT_PRESETS", "ConvStemEmbed", "ViTPreset", "create_vit", "vit_preset"]

STEMS = ("patch", "cnn")


@dataclass(frozen=True)
class ViTPreset:
    """Width, depth and number of heads of a ViT architecture."""

    embed_dim: int
    depth: int
    num_heads: int


VIT_PRESETS: dict[str, ViTPreset] = {
    # A small preset for the embedded CPU benchmark (~2.7M parameters; use patch 8 at 64 px).
    "vit_mini": ViTPreset(embed_dim=192, depth=6, num_heads=3),
    # A toy preset for fast tests of the whole pipeline (not for results).
    "vit_micro": ViTPreset(embed_dim=48, depth=2, num_heads=2),
    "vit_tiny": ViTPreset(embed_dim=192, depth=12, num_heads=3),
    "vit_small": ViTPreset(embed_dim=384, depth=12, num_heads=6),
    "vit_base": ViTPreset(embed_dim=768, depth=12, num_heads=12),
}


def vit_preset(arch: str) -> ViTPreset:
    """Return the :class:`ViTPreset` of ``arch`` or raise a ``ValueError`` naming the choices."""
    try:
        return VIT_PRESETS[arch]
    except KeyError:
        raise ValueError(
            f"unknown ViT architecture {arch!r}; choose one of {sorted(VIT_PRESETS)}"
        ) from None


class ConvStemEmbed(PatchEmbed):
    """timm's ``PatchEmbed`` with a convolutional stem in place of the patch projection.

    For a patch size ``p = 2**n``: ``n`` stages of 3x3 convolution (stride 1, no bias), batch
    norm, ReLU and 2x2 max pooling, with ``32, 64, 128, ...`` channels (at most the embedding
    width), then a 1x1 convolution to the width. The output grid is the patch grid (``H / p``),
    so everything downstream of ``proj`` (flatten, position embedding, blocks) is unchanged.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        patch, width = self.patch_size[0], self.proj.out_channels
        if self.patch_size[0] != self.patch_size[1] or patch < 2 or patch & (patch - 1):
            raise ValueError(f"stem='cnn' needs a square power-of-two patch size, got {patch}")
        layers, channels = [], self.proj.in_channels
        for stage in range(patch.bit_length() - 1):
            out = min(32 * 2**stage, width)
            layers += [nn.Conv2d(channels, out, 3, 1, 1, bias=False), nn.BatchNorm2d(out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            channels = out
        self.proj = nn.Sequential(*layers, nn.Conv2d(channels, width, 1))


def create_vit(
    arch: str = "vit_small",
    *,
    patch_size: int = 16,
    img_size: int = 224,
    drop_path_rate: float = 0.0,
    stem: str = "patch",
    **kw,
) -> VisionTransformer:
    """Build a timm ViT whose forward returns the CLS embedding.

    Args:
        arch: One of ``vit_mini`` (192 wide, 6 blocks, 3 heads), ``vit_tiny`` (192/12/3),
            ``vit_small`` (384/12/6) or ``vit_base`` (768/12/12).
        patch_size: Patch size in pixels (DINO ships 8 and 16).
        img_size: Image size the position embedding is stored for (DINO: 224). Other sizes are
            accepted at run time (``dynamic_img_size``), as long as they are multiples of
            ``patch_size``.
        drop_path_rate: Stochastic-depth rate (linearly increasing over blocks). AMA uses 0.1 on
            the student and 0 on the teacher.
        stem: ``"patch"`` (DINO's linear patch projection) or ``"cnn"``
            (:class:`ConvStemEmbed`, for power-of-two patch sizes).
        **kw: Passed to ``timm.models.vision_transformer.VisionTransformer``.

    Returns:
        A ``VisionTransformer`` with ``num_classes=0`` and CLS-token pooling: ``model(x)`` maps
        images ``(batch, 3, H, W)`` to CLS embeddings ``(batch, embed_dim)`` (after the final
        LayerNorm, as DINO). ``model.embed_dim`` holds the width.
    """
    preset = vit_preset(arch)
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; choose one of {list(STEMS)}")
    options = dict(
        img_size=img_size,
        patch_size=patch_size,
        embed_dim=preset.embed_dim,
        depth=preset.depth,
        num_heads=preset.num_heads,
        mlp_ratio=4.0,
        qkv_bias=True,
        num_classes=0,
        global_pool="token",
        dynamic_img_size=True,
        drop_path_rate=drop_path_rate,
    )
    if stem == "cnn":
        options["embed_layer"] = ConvStemEmbed
    options.update(kw)
    return VisionTransformer(**options)
