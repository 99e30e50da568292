"""CLS attention maps against the full attention matrix of timm's non-fused attention path."""

import copy

import pytest
import torch

from amalib.models.attention import cls_attention_maps
from amalib.models.vit import create_vit


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return create_vit("vit_mini", patch_size=8, img_size=32, drop_path_rate=0.1)


def reference_cls_attention(model, images):
    """Full attention matrix of the last block via timm's explicit (non-fused) path."""
    model = copy.deepcopy(model).eval()
    attn = model.blocks[-1].attn
    attn.fused_attn = False
    captured = {}
    # In the explicit path ``attn_drop`` receives softmax(q kᵀ · scale), (B, heads, N, N).
    handle = attn.attn_drop.register_forward_hook(lambda m, i, o: captured.update(a=i[0]))
    with torch.no_grad():
        model(images)
    handle.remove()
    return captured["a"]


@pytest.mark.parametrize("size", [(32, 32), (16, 16), (24, 40)])
def test_matches_full_attention_matrix(vit, size):
    images = torch.randn(2, 3, *size)
    maps = cls_attention_maps(vit, images)
    grid_h, grid_w = size[0] // 8, size[1] // 8
    assert maps.shape == (2, 3, grid_h, grid_w)

    full = reference_cls_attention(vit, images)  # (B, heads, 1 + hw, 1 + hw)
    for b in range(2):
        for h in range(3):
            for row in range(grid_h):
                for col in range(grid_w):
                    expected = full[b, h, 0, 1 + row * grid_w + col]
                    torch.testing.assert_close(maps[b, h, row, col], expected,
                                               rtol=1e-5, atol=1e-6)
    sums = maps.sum(dim=(-2, -1))
    assert torch.all(sums <= 1 + 1e-6) and torch.all(sums > 0)
    torch.testing.assert_close(sums, 1 - full[:, :, 0, 0], rtol=1e-5, atol=1e-6)


def test_restores_mode_and_removes_hook(vit):
    vit.train()
    cls_attention_maps(vit, torch.randn(1, 3, 32, 32))
    assert vit.training
    assert not vit.blocks[-1].attn.qkv._forward_hooks


def test_accepts_a_wrapper_with_backbone(vit):
    class Wrapper(torch.nn.Module):
        def __init__(self, backbone):
            super().__init__()
            self.backbone = backbone

    images = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(cls_attention_maps(Wrapper(vit), images),
                               cls_attention_maps(vit, images))
