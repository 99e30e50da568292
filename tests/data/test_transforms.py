"""Tests of the multi-crop and evaluation transforms and of crop-major collation."""

import random

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from amalib.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MultiCropTransform,
    ToNormalisedTensor,
    collate_multicrop,
    eval_transform,
)

MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def _photo(size=80, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size + 10, 3), dtype=np.uint8))


def _sketch(size=80):
    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    d.ellipse([15, 15, size - 15, size - 15], outline="black", width=2)
    d.line([(10, size // 2), (size - 10, size // 2)], fill="black", width=2)
    return img


@pytest.mark.parametrize("domain", ["photo", "sketch"])
@pytest.mark.parametrize(
    "n_global, n_local, g, l", [(2, 0, 32, 16), (2, 3, 48, 24), (3, 2, 40, 16)]
)
def test_multicrop_shapes_order_and_range(domain, n_global, n_local, g, l):
    torch.manual_seed(0)
    random.seed(0)
    t = MultiCropTransform(
        global_size=g, local_size=l, n_global=n_global, n_local=n_local, domain=domain
    )
    image = _photo() if domain == "photo" else _sketch()
    crops = t(image)
    assert len(crops) == n_global + n_local
    assert [c.shape for c in crops] == [(3, g, g)] * n_global + [(3, l, l)] * n_local
    for c in crops:
        assert c.dtype == torch.float32
        raw = c * STD + MEAN  # undo the ImageNet normalisation
        assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5


def test_photo_recipe_follows_dino():
    t = MultiCropTransform(global_size=32, local_size=16, n_local=2, domain="photo")
    g1, g2, loc = (repr(x) for x in (*t.global_transforms, t.local_transform))
    assert "ColorJitter" in g1 and "RandomGrayscale(p=0.2)" in g1
    assert "_RandomGaussianBlur(p=1.0" in g1 and "_RandomSolarize" not in g1
    assert "_RandomGaussianBlur(p=0.1" in g2 and "_RandomSolarize(p=0.2)" in g2
    assert "_RandomGaussianBlur(p=0.5" in loc and "_RandomSolarize" not in loc


def test_sketch_recipe_has_no_colour_ops():
    t = MultiCropTransform(global_size=32, local_size=16, n_local=2, domain="sketch")
    for x in (*t.global_transforms, t.local_transform):
        text = repr(x)
        assert "ColorJitter" not in text and "Solarize" not in text and "Grayscale" not in text


def _paper_level(crop):
    """90th percentile of the darkest channel: the brightness of the paper in a sketch crop."""
    raw = crop * STD + MEAN
    return torch.quantile(raw.min(0).values.flatten(), 0.9).item()


def test_sketch_crops_keep_white_paper_white():
    torch.manual_seed(1)
    random.seed(1)
    t = MultiCropTransform(global_size=48, local_size=24, n_local=4, domain="sketch")
    white = []
    for _ in range(10):
        for c in t(_sketch()):
            raw = c * STD + MEAN
            assert _paper_level(c) > 0.97  # the paper stays white, not tinted or inverted
            assert (raw.max(0).values - raw.min(0).values).max() < 0.05  # no colour appears
            white.append((raw.min(0).values > 0.8).float().mean().item())
    assert np.mean(white) > 0.7  # mostly paper overall


def test_photo_recipe_would_not_keep_paper_white():
    # Sanity check of the test above: it can fail; the photo recipe tints or inverts paper.
    torch.manual_seed(0)
    random.seed(0)
    t = MultiCropTransform(global_size=48, local_size=24, n_local=0, domain="photo")
    levels = [_paper_level(c) for _ in range(30) for c in t(_sketch())]
    assert min(levels) < 0.97


def test_invalid_arguments():
    with pytest.raises(ValueError):
        MultiCropTransform(global_size=32, local_size=16, n_local=2, domain="depth")
    with pytest.raises(ValueError):
        MultiCropTransform(global_size=32, local_size=16, n_global=0, n_local=2)


@pytest.mark.parametrize(
    "w, h, resize, crop", [(90, 60, 64, 56), (60, 90, 32, 32), (50, 50, 50, 40)]
)
def test_eval_transform_matches_plain_reference(w, h, resize, crop):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    out = eval_transform(resize, crop)(img)
    assert out.shape == (3, crop, crop)
    # Reference: shorter side to `resize` (aspect kept), then the centre `crop` × `crop` box.
    if w <= h:
        nw, nh = resize, int(resize * h / w)
    else:
        nw, nh = int(resize * w / h), resize
    big = np.asarray(img.resize((nw, nh), Image.Resampling.BICUBIC), np.float32) / 255
    top, left = int(round((nh - crop) / 2)), int(round((nw - crop) / 2))
    ref = (big[top : top + crop, left : left + crop] - IMAGENET_MEAN) / IMAGENET_STD
    ref = torch.from_numpy(ref.transpose(2, 0, 1).astype(np.float32))
    assert torch.allclose(out, ref, atol=0.05)  # resize implementations differ slightly
    assert (out - ref).abs().mean() < 0.01


@pytest.mark.parametrize("w, h", [(48, 48), (24, 24), (37, 53)])
def test_to_normalised_tensor_matches_torchvision(w, h):
    from torchvision import transforms as T

    rng = np.random.default_rng(w * h)
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    out = ToNormalisedTensor(IMAGENET_MEAN, IMAGENET_STD)(img)
    ref = T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])(img)
    assert out.shape == (3, h, w) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    # The formula, pixel by pixel, on one corner.
    pixels = np.asarray(img)
    for c in range(3):
        expected = (pixels[0, 0, c] / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        assert abs(out[c, 0, 0].item() - expected) < 1e-6
    with pytest.raises(ValueError, match="expected an RGB image, got mode 'L'"):
        ToNormalisedTensor(IMAGENET_MEAN, IMAGENET_STD)(img.convert("L"))


def _loop_reference(samples):
    """Crop-major layout written out: row i of crop c is sample i's crop c."""
    kept = [s for s in samples if s is not None]
    n_crops = len(kept[0][0])
    crops = []
    for c in range(n_crops):
        rows = [kept[i][0][c] for i in range(len(kept))]
        crops.append(torch.stack(rows))
    return crops, [s[1] for s in kept]


@pytest.mark.parametrize("batch_size, drop", [(1, []), (4, [1]), (5, [0, 4])])
def test_collate_multicrop_is_crop_major(batch_size, drop):
    g = torch.Generator().manual_seed(batch_size)
    samples = []
    for i in range(batch_size):
        crops = [torch.randn(3, 8, 8, generator=g) for _ in range(2)]
        crops += [torch.randn(3, 4, 4, generator=g) for _ in range(3)]
        samples.append(None if i in drop else (crops, 10 + i))
    crops, indices = collate_multicrop(samples)
    ref_crops, ref_indices = _loop_reference(samples)
    assert indices.dtype == torch.long and indices.tolist() == ref_indices
    assert len(crops) == 5
    for got, ref in zip(crops, ref_crops, strict=True):
        assert torch.equal(got, ref)
    # Concatenated network inputs: row c * B + i is crop c of sample i.
    b = batch_size - len(drop)
    flat = torch.cat(crops[:2])
    assert torch.equal(flat[1 * b + (b - 1)], ref_crops[1][b - 1])


def test_collate_multicrop_rejects_labels_and_handles_empty():
    crops = [torch.zeros(3, 4, 4)]
    with pytest.raises(TypeError, match="labels"):
        collate_multicrop([(crops, 3, 0)])
    out, idx = collate_multicrop([None, None])
    assert out == [] and idx.numel() == 0


def _blurs(compose):
    return [t for t in compose.transforms if type(t).__name__ == "_RandomGaussianBlur"]


def test_sketch_photometric_dino_is_the_photo_recipe():
    """docs/method.md and the release give sketches DINO's photometric augmentation too."""
    kwargs = dict(global_size=32, local_size=16, n_local=2)
    photo = MultiCropTransform(**kwargs, domain="photo")
    sketch = MultiCropTransform(**kwargs, domain="sketch", photometric="dino")
    assert sketch.photometric == "dino" and photo.photometric == "dino"
    assert MultiCropTransform(**kwargs, domain="sketch").photometric == "sketch"
    for ours, want in zip((*sketch.global_transforms, sketch.local_transform),
                          (*photo.global_transforms, photo.local_transform)):
        assert repr(ours) == repr(want)
    # And it behaves like it: the paper of a sketch gets tinted or inverted.
    torch.manual_seed(0)
    random.seed(0)
    t = MultiCropTransform(global_size=48, local_size=24, n_local=0, domain="sketch",
                           photometric="dino")
    assert min(_paper_level(c) for _ in range(30) for c in t(_sketch())) < 0.97
    with pytest.raises(ValueError, match="photometric"):
        MultiCropTransform(**kwargs, domain="sketch", photometric="none")


@pytest.mark.parametrize("domain", ["photo", "sketch"])
def test_blur_radius_absolute_is_dinos_at_every_crop_size(domain):
    kwargs = dict(global_size=224, local_size=96, n_local=2, domain=domain)
    absolute = MultiCropTransform(**kwargs, blur_radius="absolute")
    scaled = MultiCropTransform(**kwargs)
    # DINO / the release: GaussianBlur(p) with radius ~ U(0.1, 2.0) on every crop.
    for compose in (*absolute.global_transforms, absolute.local_transform):
        assert [b.sigma for b in _blurs(compose)] == [(0.1, 2.0)]
    assert [b.p for b in _blurs(absolute.local_transform)] == [0.5]
    assert _blurs(scaled.global_transforms[0])[0].sigma == pytest.approx((0.1, 2.0))
    assert _blurs(scaled.local_transform)[0].sigma == pytest.approx((0.1 * 96 / 224, 2 * 96 / 224))
    with pytest.raises(ValueError, match="blur_radius"):
        MultiCropTransform(**kwargs, blur_radius="dino")


def test_eval_transform_bilinear_is_the_release_torchvision_default():
    """The release: ``Compose([Resize(224), CenterCrop(224), ToTensor(), Normalize(...)])``."""
    from torchvision import transforms as T

    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8))
    release = T.Compose([T.Resize(48), T.CenterCrop(40), T.ToTensor(),
                         T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    want = release(img)
    torch.testing.assert_close(eval_transform(48, 40, interpolation="bilinear")(img), want,
                               rtol=0, atol=1e-5)
    bicubic = eval_transform(48, 40)(img)
    assert (bicubic - want).abs().max() > 0.05  # amalib's default does differ
    with pytest.raises(ValueError, match="interpolation"):
        eval_transform(48, 40, interpolation="nearest")
