"""DINO-style multi-crop augmentation for sketches and photos, evaluation transforms, collation.

Multi-crop (Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021;
AMA, Yin et al., AAAI 2024, uses it for both domains): each image gives ``n_global`` large crops
and ``n_local`` small crops. The teacher sees only the global crops, the student all of them.

Batches are **crop-major** (``docs/architecture.md``): :func:`collate_multicrop` turns ``B``
samples of ``C`` crops into a list of ``C`` tensors ``(B, 3, H_c, W_c)``, globals first, so the
model runs one backbone pass per resolution.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps
from torchvision import transforms as T

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MultiCropTransform",
    "ToNormalisedTensor",
    "eval_transform",
    "supervised_transform",
    "collate_multicrop",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ToNormalisedTensor:
    """PIL RGB image -> ``(3, H, W)`` float32 tensor ``(x / 255 - mean) / std``.

    The same values as ``T.Compose([T.ToTensor(), T.Normalize(mean, std)])`` up to float32
    rounding (within 1e-6), contiguous like ``ToTensor``'s, with fewer tensor operations: about
    4x faster on the small crops of the embedded benchmark, where the conversion was a fifth of
    a photo's multi-crop time (``benchmarks/bench_augment.py``), and still faster at 224 px.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean, self.std = tuple(mean), tuple(std)
        self._shift = torch.tensor(self.mean).view(3, 1, 1) * 255
        self._scale = 1 / (torch.tensor(self.std).view(3, 1, 1) * 255)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        if img.mode != "RGB":
            raise ValueError(f"expected an RGB image, got mode {img.mode!r}")
        pixels = torch.from_numpy(np.array(img)).permute(2, 0, 1).contiguous()
        return pixels.float().sub_(self._shift).mul_(self._scale)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


class _RandomGaussianBlur:
    """DINO's blur: with probability ``p``, a PIL Gaussian blur of radius ~ U(sigma)."""

    def __init__(self, p: float, sigma: tuple[float, float]):
        self.p, self.sigma = p, sigma

    def __call__(self, img: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return img
        return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p}, sigma={self.sigma})"


class _RandomSolarize:
    def __init__(self, p: float):
        self.p = p

    def __call__(self, img: Image.Image) -> Image.Image:
        return ImageOps.solarize(img) if random.random() < self.p else img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class _RandomThickenStrokes:
    """With probability ``p``, thicken dark strokes by a 3×3 minimum filter (a heavier pen)."""

    def __init__(self, p: float):
        self.p = p

    def __call__(self, img: Image.Image) -> Image.Image:
        return img.filter(ImageFilter.MinFilter(3)) if random.random() < self.p else img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class MultiCropTransform:
    """DINO multi-crop for one domain: PIL image → list of ``n_global + n_local`` tensors.

    **Photos** (``domain="photo"``) get DINO's recipe: random resized crop (bicubic), horizontal
    flip, colour jitter (0.4, 0.4, 0.2, 0.1) with p=0.8, grayscale p=0.2, Gaussian blur with
    p = 1.0 / 0.1 / 0.5 on global crop 1 / global crop 2 / local crops, solarize p=0.2 on global
    crop 2 only.

    **Sketches** (``domain="sketch"``) are dark strokes on white paper, so the photometric ops
    are replaced by geometric and pen-like ones: colour jitter would tint the paper and shift
    its brightness (hue/saturation are meaningless on gray strokes; brightness/contrast turn
    white paper gray), solarize inverts the paper to black — neither produces anything a sketch
    looks like, and grayscale is a no-op. Sketches get random resized crop, flip, a small
    rotation / scale / shear (``RandomAffine``, filled with white so no black corners appear),
    a random stroke thickening (pen width) and DINO's blur schedule (blur keeps white white).

    ``photometric`` overrides the domain's recipe: ``"dino"`` gives sketches the photo recipe
    above, as docs/method.md and the release do (the release builds the same
    ``DataAugmentationDINO`` for both domains, only the crop scales differ); ``"sketch"`` gives
    the sketch recipe. ``None`` (the default) is ``"dino"`` for photos and ``"sketch"`` for
    sketches.

    Crop sizes and scales come from the config: 224 / 96 with scales (0.6, 1.0) / (0.2, 0.6) on
    the real benchmarks (docs/method.md), small sizes on the embedded one. ``blur_sigma`` is a
    radius range in pixels; ``blur_radius="scaled_to_crop"`` (default) reads it at 224 pixels and
    scales it with each crop's size (a 96-pixel local crop gets 0.04-0.86 from 0.1-2.0),
    ``blur_radius="absolute"`` uses it as is at every crop size, as DINO and the release do.

    Args:
        global_size: Side of the global crops.
        local_size: Side of the local crops.
        n_global: Number of global crops (DINO: 2; the DINO/AMA losses assume 2).
        n_local: Number of local crops (docs/method.md: 8).
        global_scale: Area fraction range of the global crops.
        local_scale: Area fraction range of the local crops.
        domain: ``"photo"`` or ``"sketch"``.
        blur_sigma: Blur radius range (at 224 pixels when ``blur_radius="scaled_to_crop"``).
        photometric: ``"dino"``, ``"sketch"`` or ``None`` (the domain's own recipe).
        blur_radius: ``"scaled_to_crop"`` or ``"absolute"`` (DINO's, the release's).
        mean: Normalisation mean (ImageNet).
        std: Normalisation std (ImageNet).

    Returns from ``__call__``:
        A list of ``n_global + n_local`` float tensors, globals first: ``(3, global_size,
        global_size)`` then ``(3, local_size, local_size)``, ImageNet-normalised.
    """

    def __init__(
        self,
        *,
        global_size: int,
        local_size: int,
        n_global: int = 2,
        n_local: int,
        global_scale: tuple[float, float] = (0.6, 1.0),
        local_scale: tuple[float, float] = (0.2, 0.6),
        domain: str = "photo",
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        photometric: str | None = None,
        blur_radius: str = "scaled_to_crop",
    ):
        if domain not in ("photo", "sketch"):
            raise ValueError(f"domain must be 'photo' or 'sketch', got {domain!r}")
        if photometric is None:
            photometric = "dino" if domain == "photo" else "sketch"
        if photometric not in ("dino", "sketch"):
            raise ValueError(f"photometric must be 'dino' or 'sketch', got {photometric!r}")
        if blur_radius not in ("scaled_to_crop", "absolute"):
            raise ValueError(
                f"blur_radius must be 'scaled_to_crop' or 'absolute', got {blur_radius!r}"
            )
        self.photometric, self.blur_radius = photometric, blur_radius
        if n_global < 1 or n_local < 0:
            raise ValueError(f"need n_global >= 1 and n_local >= 0, got {n_global}, {n_local}")
        self.domain, self.n_global, self.n_local = domain, n_global, n_local
        self.global_size, self.local_size = global_size, local_size
        normalise = ToNormalisedTensor(mean, std)

        def blur(p, size):
            factor = size / 224 if blur_radius == "scaled_to_crop" else 1.0
            return _RandomGaussianBlur(p, tuple(s * factor for s in blur_sigma))

        def crop(size, scale):
            return T.RandomResizedCrop(
                size, scale=tuple(scale), interpolation=T.InterpolationMode.BICUBIC
            )

        if photometric == "dino":
            look = T.Compose(
                [
                    T.RandomHorizontalFlip(p=0.5),
                    T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
                    T.RandomGrayscale(p=0.2),
                ]
            )
            extra = [[blur(1.0, global_size)], [blur(0.1, global_size), _RandomSolarize(0.2)]]
            local_extra = [blur(0.5, local_size)]
        else:
            look = T.Compose(
                [
                    T.RandomHorizontalFlip(p=0.5),
                    T.RandomApply(
                        [T.RandomAffine(10, scale=(0.9, 1.1), shear=5, fill=(255, 255, 255))],
                        p=0.5,
                    ),
                    _RandomThickenStrokes(p=0.3),
                ]
            )
            extra = [[blur(1.0, global_size)], [blur(0.1, global_size)]]
            local_extra = [blur(0.5, local_size)]
        # Globals beyond the second reuse the second's recipe.
        self.global_transforms = [
            T.Compose([crop(global_size, global_scale), look, *extra[min(k, 1)], normalise])
            for k in range(n_global)
        ]
        self.local_transform = T.Compose(
            [crop(local_size, local_scale), look, *local_extra, normalise]
        )

    def __call__(self, image: Image.Image) -> list[torch.Tensor]:
        crops = [t(image) for t in self.global_transforms]
        crops += [self.local_transform(image) for _ in range(self.n_local)]
        return crops

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(domain={self.domain!r}, {self.n_global}×{self.global_size}px "
            f"+ {self.n_local}×{self.local_size}px)"
        )


#: Values of ``data.resize_interpolation`` (the resize of :func:`eval_transform`).
RESIZE_INTERPOLATIONS = ("bicubic", "bilinear")


def eval_transform(resize: int, crop: int, *, interpolation: str = "bicubic",
                   mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Evaluation transform: resize the shorter side to ``resize``, centre-crop ``crop``, normalise.

    docs/method.md: cluster features use ``eval_transform(256, 224)``, test features
    ``eval_transform(224, 224)``. ``interpolation`` is ``"bicubic"`` (amalib's default, as the
    training crops) or ``"bilinear"`` (torchvision's ``Resize`` default, which the release's
    ``EvalDataset`` / ``TestDataset`` use).

    Returns:
        A callable PIL image → ``(3, crop, crop)`` float tensor.
    """
    if interpolation not in RESIZE_INTERPOLATIONS:
        raise ValueError(
            f"interpolation must be one of {RESIZE_INTERPOLATIONS}, got {interpolation!r}"
        )
    return T.Compose(
        [
            T.Resize(resize, interpolation=T.InterpolationMode(interpolation)),
            T.CenterCrop(crop),
            ToNormalisedTensor(mean, std),
        ]
    )


def supervised_transform(size: int, *, scale: tuple[float, float] = (0.4, 1.0),
                         mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Training transform of supervised (cross-entropy) training: a random resized crop of
    ``size`` px covering ``scale`` of the image (bicubic), a horizontal flip, normalisation.

    Used by :mod:`amalib.train.supervised` for the embedded starting backbone and the ablation's
    oracle; AMA itself uses :class:`MultiCropTransform`.
    """
    return T.Compose(
        [
            T.RandomResizedCrop(size, scale=tuple(scale),
                                interpolation=T.InterpolationMode.BICUBIC),
            T.RandomHorizontalFlip(),
            ToNormalisedTensor(mean, std),
        ]
    )


def collate_multicrop(batch) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Collate ``(crops, index)`` samples into crop-major tensors, dropping ``None`` samples.

    Args:
        batch: A list of ``(crops, index)`` with ``crops`` a list of ``C`` tensors (same ``C``
            and per-position shapes for every sample), or ``None`` for unreadable images.
            Training samples carry no label; a 3-tuple is rejected.

    Returns:
        ``(crops, indices)``: ``crops[c]`` is a ``(B, 3, H_c, W_c)`` tensor of crop ``c`` of
        every kept sample (globals first, as produced), ``indices`` a ``(B,)`` int64 tensor.
        ``B`` is the number of kept samples (``0``: ``([], empty tensor)``).
    """
    kept = [sample for sample in batch if sample is not None]
    if not kept:
        return [], torch.empty(0, dtype=torch.long)
    for sample in kept:
        if len(sample) != 2:
            raise TypeError(
                "training samples must be (crops, index); got a "
                f"{len(sample)}-tuple (labels never enter the training path)"
            )
    n_crops = len(kept[0][0])
    crops = [torch.stack([sample[0][c] for sample in kept]) for c in range(n_crops)]
    indices = torch.tensor([int(sample[1]) for sample in kept], dtype=torch.long)
    return crops, indices
