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
position embedding is resampled to the patch grid of each input, either by timm's
``resample_abs_pos_embed`` (bicubic with antialiasing, to the exact grid size;
``pos_embed_interpolation="timm"``) or as DINO's ``interpolate_pos_encoding``, which AMA's
release inherits (bicubic without antialiasing, with the scale factor ``(grid + 0.1) /
sqrt(N)``; ``pos_embed_interpolation="dino"``, :class:`DINOPosEmbedVisionTransformer`). timm's attention uses ``F.scaled_dot_product_attention`` (fused kernels on CUDA) and
works under ``torch.autocast`` with bf16; nothing here is device specific.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed
from timm.models.vision_transformer import VisionTransformer
from torch import nn

__all__ = [
    "POS_EMBED_INTERPOLATIONS",
    "STEMS",
    "VIT_PRESETS",
    "ConvStemEmbed",
    "DINOPosEmbedVisionTransformer",
    "MaxPool2x2",
    "ViTPreset",
    "create_vit",
    "dino_interpolate_pos_encoding",
    "vit_preset",
]

STEMS = ("patch", "cnn")
#: Values of ``model.pos_embed_interpolation`` (see the module docstring).
POS_EMBED_INTERPOLATIONS = ("timm", "dino")


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


class MaxPool2x2(nn.MaxPool2d):
    """``nn.MaxPool2d(2)`` with a faster CPU forward wherever autograd needs no indices.

    PyTorch's CPU kernel for max pooling of an NCHW tensor loops over each window element by
    element. It takes 21 ms for a ``128 x 32 x 48 x 48`` batch on the project's 2-core machine.
    The element-wise maximum of the window's four strided quarters takes 2.5 ms and gives the
    same values: a maximum is exact, and an odd last row or column is dropped, as the kernel's
    floor mode drops it. The bits can differ only in the sign of a zero, where a window ties
    -0.0 with +0.0. In the stem a -0.0 would have to come from a batch-norm output of exactly
    -0.0 (ReLU keeps it), which takes a shift of exactly -0.0; the seed-0 demo's weights and
    metrics are the same to the bit. ``tests/models/test_vit.py`` compares the values with the
    kernel's, and the network's features with those of ``nn.MaxPool2d``, bit for bit.

    It is used when no gradient will flow through the call: the teacher's forward in a training
    step, feature extraction, and the frozen backbone of the head warm-up. With a gradient, the
    kernel runs as before, because its indices decide which element of a tied window gets the
    gradient. The kernel also runs on a GPU, on channels-last input (which it vectorises) and
    on input smaller than a window (it raises). ``torch.jit.script`` cannot compile the module
    (the stem is not scripted anywhere in amalib).
    """

    def __init__(self) -> None:
        super().__init__(kernel_size=2)

    @staticmethod
    def _kernel_runs(x: torch.Tensor) -> bool:
        channels_last = (x.dim() == 4 and not x.is_contiguous()
                         and x.is_contiguous(memory_format=torch.channels_last))
        return (x.device.type != "cpu" or (torch.is_grad_enabled() and x.requires_grad)
                or x.dim() not in (3, 4) or min(x.shape[-2:]) < 2 or channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._kernel_runs(x):
            return super().forward(x)
        rows, cols = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        top = torch.maximum(x[..., 0:rows:2, 0:cols:2], x[..., 0:rows:2, 1:cols:2])
        bottom = torch.maximum(x[..., 1:rows:2, 0:cols:2], x[..., 1:rows:2, 1:cols:2])
        return torch.maximum(top, bottom)


class ConvStemEmbed(PatchEmbed):
    """timm's ``PatchEmbed`` with a convolutional stem in place of the patch projection.

    For a patch size ``p = 2**n``: ``n`` stages of 3x3 convolution (stride 1, no bias), batch
    norm, ReLU and 2x2 max pooling (:class:`MaxPool2x2`), with ``32, 64, 128, ...`` channels
    (at most the embedding width), then a 1x1 convolution to the width. The output grid is the
    patch grid (``H / p``), so everything downstream of ``proj`` (flatten, position embedding,
    blocks) is unchanged.
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
                       nn.ReLU(inplace=True), MaxPool2x2()]
            channels = out
        self.proj = nn.Sequential(*layers, nn.Conv2d(channels, width, 1))


def dino_interpolate_pos_encoding(pos_embed: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """DINO's ``VisionTransformer.interpolate_pos_encoding`` for a ``rows x cols`` patch grid.

    ``pos_embed`` is ``(1, 1 + N, D)`` (CLS first, then a square ``sqrt(N) x sqrt(N)`` grid).
    As DINO (and AMA's release, which copies it): returned as is when the grid has ``N`` patches
    and is square, else the patch part is resized by ``F.interpolate(mode="bicubic",
    scale_factor=((rows + 0.1) / sqrt(N), (cols + 0.1) / sqrt(N)))`` (no antialiasing; the 0.1
    avoids a floating-point off-by-one, DINO issue 8).
    """
    n_patches = pos_embed.shape[1] - 1
    if n_patches == rows * cols and rows == cols:
        return pos_embed
    dim = pos_embed.shape[-1]
    side = int(math.sqrt(n_patches))
    patch_pos = pos_embed[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    patch_pos = F.interpolate(
        patch_pos.float(),
        scale_factor=((rows + 0.1) / math.sqrt(n_patches), (cols + 0.1) / math.sqrt(n_patches)),
        mode="bicubic",
    ).to(pos_embed.dtype)
    if tuple(patch_pos.shape[-2:]) != (rows, cols):
        raise ValueError(f"resampled grid {tuple(patch_pos.shape[-2:])}, expected {rows, cols}")
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat((pos_embed[:, :1], patch_pos), dim=1)


class DINOPosEmbedVisionTransformer(VisionTransformer):
    """timm's ViT with the position embedding resampled as DINO does
    (:func:`dino_interpolate_pos_encoding`) for inputs of another size; same parameters."""

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        if (not self.dynamic_img_size or self.no_embed_class or self.reg_token is not None
                or self.cls_token is None):
            return super()._pos_embed(x)
        batch, rows, cols, dim = x.shape
        pos_embed = dino_interpolate_pos_encoding(self.pos_embed, rows, cols)
        x = torch.cat([self.cls_token.expand(batch, -1, -1), x.view(batch, -1, dim)], dim=1)
        return self.pos_drop(x + pos_embed)


def create_vit(
    arch: str = "vit_small",
    *,
    patch_size: int = 16,
    img_size: int = 224,
    drop_path_rate: float = 0.0,
    stem: str = "patch",
    pos_embed_interpolation: str = "timm",
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
        pos_embed_interpolation: ``"timm"`` (antialiased bicubic to the exact grid) or
            ``"dino"`` (DINO's ``interpolate_pos_encoding``, as AMA's release).
        **kw: Passed to ``timm.models.vision_transformer.VisionTransformer``.

    Returns:
        A ``VisionTransformer`` with ``num_classes=0`` and CLS-token pooling: ``model(x)`` maps
        images ``(batch, 3, H, W)`` to CLS embeddings ``(batch, embed_dim)`` (after the final
        LayerNorm, as DINO). ``model.embed_dim`` holds the width.
    """
    preset = vit_preset(arch)
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; choose one of {list(STEMS)}")
    if pos_embed_interpolation not in POS_EMBED_INTERPOLATIONS:
        raise ValueError(f"unknown pos_embed_interpolation {pos_embed_interpolation!r}; choose "
                         f"one of {list(POS_EMBED_INTERPOLATIONS)}")
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
    if pos_embed_interpolation == "dino":
        return DINOPosEmbedVisionTransformer(**options)
    return VisionTransformer(**options)
