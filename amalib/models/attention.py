"""CLS-token attention maps of the last ViT block (DINO's self-attention visualisation).

Reference: Caron et al., ICCV 2021, Fig. 1 and ``visualize_attention.py``: the attention of the
CLS query to every patch key in the last block, one map per head. timm computes attention with
``F.scaled_dot_product_attention``, which never materialises the attention matrix, so this module
captures the last block's ``attn.qkv`` output with a forward hook and recomputes
``softmax(q kᵀ / sqrt(d))`` for the CLS row only; timm itself is left untouched.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["cls_attention_maps"]


@torch.no_grad()
def cls_attention_maps(backbone: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Last-block attention from the CLS token to every patch, per head, on the patch grid.

    The backbone is run in eval mode (no drop-path) and put back into its previous mode.

    Args:
        backbone: A timm ``VisionTransformer`` (e.g. from :func:`amalib.models.vit.create_vit` or
            :func:`amalib.models.checkpoint.load_dino_backbone`), or a wrapper with ``.backbone``.
        images: ``(B, 3, H, W)`` with ``H`` and ``W`` multiples of the patch size (any size: the
            ViT is dynamic-size).

    Returns:
        ``(B, heads, H // p, W // p)`` float32 attention weights. Each head's map sums to
        ``1 − a_cls`` ≤ 1, where ``a_cls`` is the CLS token's attention to itself (and to
        register tokens, if any).
    """
    backbone = getattr(backbone, "backbone", backbone)
    attn = backbone.blocks[-1].attn
    captured: dict[str, torch.Tensor] = {}

    def hook(_module, _inputs, output):
        captured["qkv"] = output

    handle = attn.qkv.register_forward_hook(hook)
    was_training = backbone.training
    try:
        backbone.eval()
        backbone(images)
    finally:
        handle.remove()
        backbone.train(was_training)

    qkv = captured["qkv"].float()
    batch, tokens, _ = qkv.shape
    num_heads = attn.num_heads
    qkv = qkv.reshape(batch, tokens, 3, num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k = qkv[0], qkv[1]  # (B, heads, tokens, head_dim)
    q, k = attn.q_norm(q), attn.k_norm(k)
    cls_query = q[:, :, :1]  # (B, heads, 1, head_dim)
    logits = (cls_query @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    weights = logits.softmax(dim=-1)[:, :, 0]  # (B, heads, tokens)

    patch = backbone.patch_embed.patch_size
    grid_h, grid_w = images.shape[-2] // patch[0], images.shape[-1] // patch[1]
    prefix = tokens - grid_h * grid_w
    if prefix != getattr(backbone, "num_prefix_tokens", prefix):
        raise ValueError(
            f"cannot place {tokens} tokens on a {grid_h}x{grid_w} patch grid "
            f"(image {tuple(images.shape[-2:])}, patch {tuple(patch)})"
        )
    return weights[:, :, prefix:].reshape(batch, num_heads, grid_h, grid_w)
