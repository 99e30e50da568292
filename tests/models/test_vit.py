"""ViT factory: DINO's key layout, CLS output, dynamic image size, gradients."""

import pytest
import torch

from amalib.models.vit import VIT_PRESETS, ConvStemEmbed, MaxPool2x2, create_vit


def official_dino_vit_shapes(embed_dim, depth, patch_size, img_size, mlp_ratio=4):
    """Key → shape of DINO's ``vision_transformer.VisionTransformer(num_classes=0)``, written out."""
    grid = img_size // patch_size
    hidden = embed_dim * mlp_ratio
    shapes = {
        "cls_token": (1, 1, embed_dim),
        "pos_embed": (1, grid * grid + 1, embed_dim),
        "patch_embed.proj.weight": (embed_dim, 3, patch_size, patch_size),
        "patch_embed.proj.bias": (embed_dim,),
        "norm.weight": (embed_dim,),
        "norm.bias": (embed_dim,),
    }
    for i in range(depth):
        shapes |= {
            f"blocks.{i}.norm1.weight": (embed_dim,),
            f"blocks.{i}.norm1.bias": (embed_dim,),
            f"blocks.{i}.attn.qkv.weight": (3 * embed_dim, embed_dim),
            f"blocks.{i}.attn.qkv.bias": (3 * embed_dim,),
            f"blocks.{i}.attn.proj.weight": (embed_dim, embed_dim),
            f"blocks.{i}.attn.proj.bias": (embed_dim,),
            f"blocks.{i}.norm2.weight": (embed_dim,),
            f"blocks.{i}.norm2.bias": (embed_dim,),
            f"blocks.{i}.mlp.fc1.weight": (hidden, embed_dim),
            f"blocks.{i}.mlp.fc1.bias": (hidden,),
            f"blocks.{i}.mlp.fc2.weight": (embed_dim, hidden),
            f"blocks.{i}.mlp.fc2.bias": (embed_dim,),
        }
    return shapes


@pytest.mark.parametrize(
    "arch, patch_size, img_size",
    [("vit_mini", 8, 64), ("vit_tiny", 16, 224), ("vit_small", 8, 224), ("vit_base", 16, 224)],
)
def test_state_dict_has_official_dino_layout(arch, patch_size, img_size):
    preset = VIT_PRESETS[arch]
    model = create_vit(arch, patch_size=patch_size, img_size=img_size)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == official_dino_vit_shapes(preset.embed_dim, preset.depth, patch_size, img_size)
    assert model.embed_dim == preset.embed_dim
    assert model.blocks[0].attn.num_heads == preset.num_heads


def test_vit_mini_is_small():
    n_params = sum(p.numel() for p in create_vit("vit_mini", patch_size=8, img_size=64).parameters())
    assert 2.5e6 < n_params < 2.9e6


def test_forward_returns_normalised_cls_token_at_any_size():
    torch.manual_seed(0)
    model = create_vit("vit_mini", patch_size=8, img_size=64).eval()
    for size in [(64, 64), (32, 32), (48, 80)]:
        images = torch.randn(3, 3, *size)
        out = model(images)
        assert out.shape == (3, 192)
        # Reference: the token sequence after the final LayerNorm, CLS row.
        tokens = model.forward_features(images)
        assert tokens.shape[1] == 1 + (size[0] // 8) * (size[1] // 8)
        torch.testing.assert_close(out, tokens[:, 0])


def test_fused_attention_is_on():
    model = create_vit("vit_mini", patch_size=8, img_size=64)
    assert all(block.attn.fused_attn for block in model.blocks)


def test_unknown_arch_names_the_choices():
    with pytest.raises(ValueError, match="vit_mini"):
        create_vit("vit_huge")


@pytest.mark.parametrize("stem", ["patch", "cnn"])
def test_every_parameter_gets_a_finite_gradient(stem):
    torch.manual_seed(0)
    model = create_vit("vit_mini", patch_size=8, img_size=32, drop_path_rate=0.1, stem=stem)
    model(torch.randn(2, 3, 32, 32)).square().sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("patch_size, channels", [(8, [32, 64, 128]), (16, [32, 64, 128, 192])])
def test_cnn_stem_keeps_the_patch_grid(patch_size, channels):
    torch.manual_seed(0)
    model = create_vit("vit_mini", patch_size=patch_size, img_size=64, stem="cnn").eval()
    assert isinstance(model.patch_embed, ConvStemEmbed)
    convs = [m for m in model.patch_embed.proj if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [*channels, 192]
    assert [c.kernel_size for c in convs] == [(3, 3)] * len(channels) + [(1, 1)]
    for size in (64, 32):  # global and local crops: one token per patch, as the plain stem
        images = torch.randn(2, 3, size, size)
        tokens = model.patch_embed(images)  # (B, H / p, W / p, D): dynamic_img_size keeps NHWC
        assert tokens.shape == (2, size // patch_size, size // patch_size, 192)
        plain = create_vit("vit_mini", patch_size=patch_size, img_size=64).patch_embed(images)
        assert tokens.shape == plain.shape
        assert model(images).shape == (2, 192)


def _bits(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous().view(torch.int32)


@pytest.mark.parametrize("shape", [(4, 8, 48, 48), (3, 5, 7, 9), (6, 11, 10), (2, 3, 3, 5)])
def test_fast_max_pool_is_the_kernel_bit_for_bit(shape):
    # Ties (rounded values, zeros after a ReLU), negatives, infinities, odd sizes (floor mode)
    # and 3-D input: the four-quarter maximum returns the kernel's values.
    torch.manual_seed(0)
    x = torch.randn(shape).mul(3).round()
    x = torch.where(torch.rand(shape) < 0.5, torch.relu(x), x)
    x.view(-1)[::17] = float("inf")
    x.view(-1)[5::23] = -float("inf")
    with torch.no_grad():
        fast, kernel = MaxPool2x2()(x), torch.nn.functional.max_pool2d(x, 2)
    assert fast.shape == kernel.shape
    assert torch.equal(fast, kernel)
    # Bit for bit once no -0.0 ties a +0.0 (a tie is where the zero's sign may differ; in the
    # stem a -0.0 would need a batch-norm output of exactly -0.0, which ReLU keeps).
    x = x + 0.0  # -0.0 + 0.0 = +0.0
    assert (_bits(x) == _bits(torch.tensor(-0.0))).sum() == 0
    with torch.no_grad():
        fast, kernel = MaxPool2x2()(x), torch.nn.functional.max_pool2d(x, 2)
    assert torch.equal(_bits(fast), _bits(kernel))
    x.view(-1)[::13] = float("nan")  # a NaN wins its window, as in the kernel
    with torch.no_grad():
        fast, kernel = MaxPool2x2()(x), torch.nn.functional.max_pool2d(x, 2)
    assert torch.equal(fast.isnan(), kernel.isnan())
    assert torch.equal(fast.nan_to_num(0.0), kernel.nan_to_num(0.0))


def test_fast_max_pool_leaves_the_gradient_to_the_kernel(monkeypatch):
    # The kernel's indices decide which tied element gets the gradient: with autograd on, the
    # kernel runs (same gradient as nn.MaxPool2d); without, it does not.
    calls = []
    kernel = torch.nn.functional.max_pool2d

    def spy(*args, **kwargs):
        calls.append(torch.is_grad_enabled())
        return kernel(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "max_pool2d", spy)
    pool, plain = MaxPool2x2(), torch.nn.MaxPool2d(2)
    x = torch.relu(torch.randn(2, 3, 6, 6).round()).requires_grad_()
    grad = torch.randn(2, 3, 3, 3)
    (ours,) = torch.autograd.grad(pool(x), x, grad)
    (theirs,) = torch.autograd.grad(plain(x), x, grad)
    assert torch.equal(ours, theirs) and calls == [True, True]
    with torch.no_grad():
        pool(x)
    pool(x.detach())
    assert calls == [True, True]
    # The kernel also takes channels-last input (which it vectorises) and raises on input
    # smaller than a window.
    pool(x.detach().contiguous(memory_format=torch.channels_last))
    assert len(calls) == 3
    with pytest.raises(RuntimeError, match="too small"):
        pool(torch.ones(1, 1, 1, 4))


def test_cnn_stem_features_are_those_of_plain_max_pooling():
    # The whole network, eval mode and no gradient (the teacher, feature extraction): the same
    # features as with nn.MaxPool2d, bit for bit.
    torch.manual_seed(0)
    model = create_vit("vit_mini", patch_size=8, img_size=48, stem="cnn").eval()
    images = torch.rand(8, 3, 48, 48)
    with torch.no_grad():
        ours = model(images)
        for i, layer in enumerate(model.patch_embed.proj):
            if isinstance(layer, MaxPool2x2):
                model.patch_embed.proj[i] = torch.nn.MaxPool2d(2)
        theirs = model(images)
    assert torch.equal(_bits(ours), _bits(theirs))


def test_cnn_stem_rejects_what_it_cannot_build():
    with pytest.raises(ValueError, match="power-of-two patch size, got 12"):
        create_vit("vit_mini", patch_size=12, img_size=48, stem="cnn")
    with pytest.raises(ValueError, match=r"unknown stem 'resnet'; choose one of \['patch', 'cnn'\]"):
        create_vit("vit_mini", patch_size=8, img_size=48, stem="resnet")


def release_interpolate_pos_encoding(pos_embed, patch_size, x, w, h):
    """The release's ``VisionTransformer.interpolate_pos_encoding`` (DINO's), written out."""
    import math

    npatch = x.shape[1] - 1
    n = pos_embed.shape[1] - 1
    if npatch == n and w == h:
        return pos_embed
    class_pos_embed = pos_embed[:, 0]
    patch_pos_embed = pos_embed[:, 1:]
    dim = x.shape[-1]
    w0 = w // patch_size
    h0 = h // patch_size
    w0, h0 = w0 + 0.1, h0 + 0.1
    patch_pos_embed = torch.nn.functional.interpolate(
        patch_pos_embed.reshape(1, int(math.sqrt(n)), int(math.sqrt(n)), dim).permute(0, 3, 1, 2),
        scale_factor=(w0 / math.sqrt(n), h0 / math.sqrt(n)),
        mode="bicubic",
    )
    assert int(w0) == patch_pos_embed.shape[-2] and int(h0) == patch_pos_embed.shape[-1]
    patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
    return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1)


@pytest.mark.parametrize(("height", "width"), [(32, 32), (48, 48), (64, 64), (32, 48)])
def test_dino_pos_embed_interpolation_is_the_releases(height, width):
    """Tokens entering the first block: CLS + patches plus DINO's resampled position embedding."""
    from amalib.models.vit import DINOPosEmbedVisionTransformer

    torch.manual_seed(0)
    dino = create_vit("vit_micro", patch_size=16, img_size=80, pos_embed_interpolation="dino")
    assert isinstance(dino, DINOPosEmbedVisionTransformer)
    with torch.no_grad():
        dino.pos_embed.normal_()  # a non-smooth embedding, so that the resampling matters
    timm_vit = create_vit("vit_micro", patch_size=16, img_size=80)
    timm_vit.load_state_dict(dino.state_dict(), strict=True)
    images = torch.randn(2, 3, height, width)
    with torch.no_grad():
        patches = dino.patch_embed(images)
        got = dino._pos_embed(patches)
        tokens = torch.cat([dino.cls_token.expand(2, -1, -1), patches.flatten(1, 2)], dim=1)
        want = tokens + release_interpolate_pos_encoding(dino.pos_embed, 16, tokens, height, width)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        other = timm_vit._pos_embed(timm_vit.patch_embed(images))
        assert float((other - got).abs().max()) > 1e-3  # timm's antialiased resampling differs
        assert dino(images).shape == (2, 48)
    with pytest.raises(ValueError, match="pos_embed_interpolation"):
        create_vit("vit_micro", patch_size=16, img_size=32, pos_embed_interpolation="bilinear")
