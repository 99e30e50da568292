"""Load official DINO checkpoints into amalib's ViT/head, strictly and safely; save backbones.

Two official file layouts (Caron et al., ICCV 2021, https://github.com/facebookresearch/dino):

* ``dino_<arch><patch>_pretrain.pth``: the teacher backbone's state dict (``cls_token``,
  ``pos_embed``, ``patch_embed.proj.*``, ``blocks.N.*``, ``norm.*``).
* ``dino_<arch><patch>_pretrain_full_checkpoint.pth``: a dict with ``student`` (keys
  ``module.backbone.*`` / ``module.head.*``, saved from DDP), ``teacher`` (``backbone.*`` /
  ``head.*``), ``optimizer``, ``epoch``, ``args`` (an ``argparse.Namespace``) and ``dino_loss``
  (``{"center": (1, K)}``). The head's last layer uses the classic weight-norm keys
  ``head.last_layer.weight_g`` / ``weight_v``.

Files are read with ``torch.load(..., weights_only=True)``; only ``argparse.Namespace`` is
allowed on top of the default safe types. A missing file or a file that does not fit the requested
architecture is an error (AMA's release silently trained from random weights in that case).
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from amalib.models.vit import VIT_PRESETS, ConvStemEmbed, create_vit

__all__ = [
    "DINOCheckpoint",
    "load_dino_backbone",
    "load_dino_weights",
    "official_checkpoint_name",
    "parse_hub_tag",
    "read_dino_checkpoint",
    "save_backbone",
]

DINO_README = "https://github.com/facebookresearch/dino#pretrained-models"
_DINO_URL = "https://dl.fbaipublicfiles.com/dino/{name}/{name}.pth"
# DINO names its ViT-S/16 and ViT-S/8 files "deitsmall".
_OFFICIAL_PREFIX = {"vit_small": "dino_deitsmall", "vit_base": "dino_vitbase"}
_STRIP_PREFIXES = ("module.", "_orig_mod.")
_MAX_LISTED = 12

Source = Literal["teacher", "student", "each"]


def official_checkpoint_name(arch: str, patch_size: int, *, full: bool = False) -> str | None:
    """Official DINO file name for ``arch``/``patch_size`` (``None`` if DINO released none).

    Example: ``official_checkpoint_name("vit_base", 16)`` → ``"dino_vitbase16_pretrain.pth"``.
    """
    prefix = _OFFICIAL_PREFIX.get(arch)
    if prefix is None or patch_size not in (8, 16):
        return None
    suffix = "_full_checkpoint" if full else ""
    return f"{prefix}{patch_size}_pretrain{suffix}.pth"


def _download_hint(arch: str | None, patch_size: int | None) -> str:
    lines = [f"Download an official DINO checkpoint (see {DINO_README}), e.g."]
    pairs = [(arch, patch_size)] if arch and patch_size else []
    pairs += [("vit_base", 16)]
    seen = set()
    for a, p in pairs:
        for full in (False, True):
            name = official_checkpoint_name(a, p, full=full)
            if name is None or name in seen:
                continue
            seen.add(name)
            folder = f"{_OFFICIAL_PREFIX[a]}{p}_pretrain"
            kind = "backbone, student and teacher heads" if full else "teacher backbone"
            lines.append(f"  https://dl.fbaipublicfiles.com/dino/{folder}/{name}  ({kind})")
    lines.append(
        "and pass its local path, or pass 'hub:vit_base_patch16_224.dino' to fetch timm's copy "
        "(needs network access)."
    )
    return "\n".join(lines)


def parse_hub_tag(path: str | Path) -> str | None:
    """Return the timm model tag of ``"hub:<tag>"`` (e.g. ``vit_base_patch16_224.dino``), else None."""
    if isinstance(path, str) and path.startswith("hub:"):
        tag = path[len("hub:") :].strip()
        if not tag:
            raise ValueError("empty hub tag; expected e.g. 'hub:vit_base_patch16_224.dino'")
        return tag
    return None


# --------------------------------------------------------------------------------------------
# Reading files


@dataclass
class DINOCheckpoint:
    """Contents of a DINO checkpoint file, with key prefixes removed.

    Attributes:
        path: The file read.
        kind: ``"backbone"`` (a bare backbone state dict) or ``"full"`` (student/teacher dict).
        backbones: ``{"teacher": sd, "student": sd}`` for full checkpoints, ``{"backbone": sd}``
            otherwise; keys in DINO's ViT layout.
        heads: Head state dicts by the same names (empty when the file has no head).
        center: The DINO loss centre ``(1, K)`` when the file has one.
        epoch: The epoch stored in a full checkpoint.
        extra: Other top-level entries (``optimizer``, ``args``, ...), untouched.
    """

    path: Path
    kind: Literal["backbone", "full"]
    backbones: dict[str, dict[str, torch.Tensor]]
    heads: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    center: torch.Tensor | None = None
    epoch: int | None = None
    extra: dict = field(default_factory=dict)

    def backbone(self, source: Literal["teacher", "student"] = "teacher") -> dict:
        """The backbone state dict of ``source`` (a bare backbone file has only one)."""
        if self.kind == "backbone":
            return self.backbones["backbone"]
        return self.backbones[source]

    def head(self, source: Literal["teacher", "student"] = "teacher") -> dict | None:
        """The head state dict of ``source``, or ``None`` when the file has no head."""
        return self.heads.get(source)


def _torch_load(path: Path):
    """The file's content, read with ``weights_only=True`` (``argparse.Namespace`` allowed).

    Raises:
        FileNotFoundError: no such file.
        amalib.errors.CheckpointError: a truncated file, or one that is not a PyTorch file or
            holds other Python objects (never loaded unsafely).
    """
    from amalib.checkpoint_io import read_torch_file

    if not path.is_file():
        raise FileNotFoundError(f"DINO checkpoint not found: {path}")
    return read_torch_file(path, what="DINO checkpoint", safe_globals=[argparse.Namespace])


def _strip_prefixes(state_dict: dict) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in _STRIP_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


def _split_wrapper_state(state_dict: dict) -> tuple[dict, dict]:
    """Split a (DDP-)wrapped state dict into ``(backbone, head)`` state dicts."""
    state_dict = _strip_prefixes(state_dict)
    if not any(k.startswith("backbone.") for k in state_dict):
        return state_dict, {}
    backbone, head = {}, {}
    for key, value in state_dict.items():
        if key.startswith("backbone."):
            backbone[key[len("backbone.") :]] = value
        elif key.startswith("head."):
            head[key[len("head.") :]] = value
        else:
            raise ValueError(f"unexpected key {key!r} next to 'backbone.*' keys")
    return backbone, head


def _existing_file(path, arch: str | None = None, patch_size: int | None = None) -> Path:
    """``path`` as a Path, or a FileNotFoundError that says where the official files are."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"DINO checkpoint not found: {path}\n"
            f"amalib never falls back to random weights. {_download_hint(arch, patch_size)}"
        )
    return path


def read_dino_checkpoint(path: str | Path) -> DINOCheckpoint:
    """Read an official DINO file (either layout) with ``weights_only=True``.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message says where to get the files).
        ValueError: the file is neither a backbone state dict nor a full checkpoint.
    """
    path = _existing_file(path)
    content = _torch_load(path)
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a dict, got {type(content).__name__}")
    if isinstance(content.get("teacher"), dict) or isinstance(content.get("student"), dict):
        backbones, heads = {}, {}
        for source in ("teacher", "student"):
            if isinstance(content.get(source), dict):
                backbone, head = _split_wrapper_state(content[source])
                backbones[source] = backbone
                if head:
                    heads[source] = head
        backbones.setdefault("teacher", backbones.get("student"))
        backbones.setdefault("student", backbones["teacher"])
        if heads:
            heads.setdefault("teacher", heads.get("student"))
            heads.setdefault("student", heads["teacher"])
        loss_state = content.get("dino_loss") or {}
        center = loss_state.get("center") if isinstance(loss_state, dict) else None
        epoch = content.get("epoch")
        extra = {k: v for k, v in content.items() if k not in ("teacher", "student", "dino_loss")}
        return DINOCheckpoint(
            path, "full", backbones, heads, center, int(epoch) if epoch is not None else None, extra
        )
    for wrapper_key in ("model", "state_dict"):
        if isinstance(content.get(wrapper_key), dict):
            content = content[wrapper_key]
            break
    if not all(isinstance(v, torch.Tensor) for v in content.values()):
        raise ValueError(
            f"{path}: not a DINO backbone state dict (non-tensor entries "
            f"{sorted(k for k, v in content.items() if not isinstance(v, torch.Tensor))[:5]}) "
            "nor a full checkpoint with 'student'/'teacher' entries"
        )
    backbone, head = _split_wrapper_state(content)
    return DINOCheckpoint(path, "backbone", {"backbone": backbone}, {"backbone": head} if head else {})


# --------------------------------------------------------------------------------------------
# Checking and loading


def describe_backbone_state(state_dict: dict[str, torch.Tensor]) -> dict:
    """Infer width, depth, stem, patch size, grid and a matching preset from a ViT state dict."""
    info: dict = {}
    if "cls_token" in state_dict:
        info["embed_dim"] = int(state_dict["cls_token"].shape[-1])
    blocks = {int(k.split(".")[1]) for k in state_dict if k.startswith("blocks.")}
    info["depth"] = max(blocks) + 1 if blocks else 0
    proj = state_dict.get("patch_embed.proj.weight")
    if proj is not None and proj.ndim == 4:
        info["stem"] = "patch"
        info["patch_size"] = int(proj.shape[-1])
        info.setdefault("embed_dim", int(proj.shape[0]))
    # A convolutional stem (ConvStemEmbed): one 3x3 convolution per halving of the resolution.
    stages = [v for k, v in state_dict.items()
              if re.fullmatch(r"patch_embed\.proj\.\d+\.weight", k) and v.ndim == 4
              and v.shape[-1] == 3]
    if stages and proj is None:
        info["stem"] = "cnn"
        info["patch_size"] = 2 ** len(stages)
    pos = state_dict.get("pos_embed")
    if pos is not None:
        grid = math.isqrt(int(pos.shape[1]) - 1)
        if grid * grid == pos.shape[1] - 1:
            info["grid"] = grid
            if "patch_size" in info:
                info["img_size"] = grid * info["patch_size"]
    matches = [
        name
        for name, preset in VIT_PRESETS.items()
        if preset.embed_dim == info.get("embed_dim") and preset.depth == info.get("depth")
    ]
    info["arch"] = matches[0] if matches else None
    return info


def _suggestion(info: dict) -> str:
    if info.get("arch") is None:
        return (
            f"no amalib preset has width {info.get('embed_dim')} and {info.get('depth')} blocks "
            f"(presets: {', '.join(f'{k}={v.embed_dim}/{v.depth}' for k, v in VIT_PRESETS.items())})"
        )
    return (
        f"the file fits arch={info['arch']!r}, patch_size={info.get('patch_size')}, "
        f"stem={info.get('stem')!r} "
        f"(width {info.get('embed_dim')}, {info.get('depth')} blocks, "
        f"position grid {info.get('grid')}x{info.get('grid')} = img_size {info.get('img_size')})"
    )


def _key_order(key: str) -> tuple:
    """Non-block keys first, then blocks in numeric order (``blocks.2`` before ``blocks.10``)."""
    name = key.split(":")[0]
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in name.split("."))
    return (name.startswith("blocks."), parts)


def _listing(items: list[str]) -> str:
    items = sorted(items, key=_key_order)
    shown = items[:_MAX_LISTED]
    more = f" ... and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
    blocks = sorted({int(k.split(".")[1]) for k in items if k.startswith("blocks.")})
    in_blocks = f" (in blocks {blocks[0]}..{blocks[-1]})" if len(blocks) > 1 else ""
    return ", ".join(shown) + more + in_blocks


def _mismatches(expected: dict, state_dict: dict) -> list[str]:
    """Lines describing shape mismatches, missing and unexpected keys (empty when they fit)."""
    shapes = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict)
        if state_dict[k].shape != expected[k].shape
    ]
    missing = list(set(expected) - set(state_dict))
    unexpected = list(set(state_dict) - set(expected))
    lines = []
    if shapes:
        lines.append(f"shape mismatches: {_listing(shapes)}")
    if missing:
        lines.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        lines.append(f"unexpected keys: {_listing(unexpected)}")
    return lines


def _load_backbone_state(model: nn.Module, state_dict: dict, origin: str) -> bool:
    """Load ``state_dict`` into the ViT ``model`` strictly; returns whether pos_embed was resampled.

    A position embedding stored for another grid (e.g. a 224 px file into a model built for 96 px)
    is resampled with timm's bicubic ``resample_abs_pos_embed``: the ViT is dynamic-size anyway.
    Anything else that does not match raises a ``ValueError`` naming the keys and shapes.
    """
    from timm.layers import resample_abs_pos_embed

    expected = model.state_dict()
    state_dict = dict(state_dict)
    resampled = False
    pos, own_pos = state_dict.get("pos_embed"), expected.get("pos_embed")
    if (
        pos is not None
        and own_pos is not None
        and pos.shape != own_pos.shape
        and pos.ndim == 3
        and pos.shape[-1] == own_pos.shape[-1]
        and getattr(model, "num_prefix_tokens", 1) == 1
    ):
        old = math.isqrt(pos.shape[1] - 1)
        if old * old == pos.shape[1] - 1:
            grid = tuple(model.patch_embed.grid_size)
            state_dict["pos_embed"] = resample_abs_pos_embed(
                pos.float(), new_size=list(grid), old_size=[old, old], num_prefix_tokens=1
            )
            resampled = True
    mismatches = _mismatches(expected, state_dict)
    if mismatches:
        model_info = {
            "embed_dim": getattr(model, "embed_dim", None),
            "depth": len(getattr(model, "blocks", [])),
            "patch_size": getattr(getattr(model, "patch_embed", None), "patch_size", None),
            "stem": "cnn" if isinstance(getattr(model, "patch_embed", None), ConvStemEmbed)
            else "patch",
        }
        parts = [f"{origin} does not fit the backbone (model: {model_info}).", *mismatches]
        parts.append("Hint: " + _suggestion(describe_backbone_state(state_dict)) + ".")
        raise ValueError("\n".join(parts))
    model.load_state_dict(state_dict, strict=True)
    return resampled


def _load_head_state(head: nn.Module, state_dict: dict, origin: str) -> None:
    from amalib.models.head import official_head_key

    expected = {official_head_key(k): v for k, v in head.state_dict().items()}
    state_dict = {official_head_key(k): v for k, v in state_dict.items()}
    mismatches = _mismatches(expected, state_dict)
    if mismatches:
        parts = [f"{origin}: the head does not fit.", *mismatches]
        v = state_dict.get("last_layer.weight_v")
        hint = "pass load_head=False to keep a freshly initialised head"
        if v is not None and v.ndim == 2:
            hint = (
                f"the file's head has out_dim={v.shape[0]}, bottleneck_dim={v.shape[1]}; build the "
                f"head with those values or {hint}"
            )
        parts.append(f"Hint: {hint}.")
        raise ValueError("\n".join(parts))
    head.load_state_dict(dict(state_dict), strict=True)


def _unwrap(model: nn.Module) -> nn.Module:
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return model.module
    return model


def _load_hub_backbone(tag: str) -> nn.Module:  # pragma: no cover - needs network
    import timm

    try:
        model = timm.create_model(tag, pretrained=True, num_classes=0, dynamic_img_size=True)
    except Exception as error:
        raise RuntimeError(
            f"could not load timm model {tag!r} with pretrained weights (is the network "
            f"reachable?): {error}. {_download_hint(None, None)}"
        ) from error
    return model.eval()


def load_dino_backbone(
    path: str | Path,
    arch: str = "vit_base",
    patch_size: int = 16,
    *,
    source: Literal["teacher", "student"] = "teacher",
    stem: str = "patch",
) -> nn.Module:
    """Build a ViT and load the backbone weights of an official DINO file into it (strict).

    This is the entry point for users who only want features.

    Args:
        path: A ``dino_*_pretrain.pth`` backbone file, a ``*_full_checkpoint.pth`` file (its
            ``teacher`` backbone is used unless ``source="student"``), a file written by
            :func:`save_backbone`, or ``"hub:<timm tag>"`` (e.g. ``hub:vit_base_patch16_224.dino``;
            downloads through timm, so it needs network access).
        arch: ViT preset the file must match (see :func:`amalib.models.vit.create_vit`).
        patch_size: Patch size the file must match.
        source: Which backbone of a full checkpoint to load.
        stem: ``"patch"`` (every official DINO file) or ``"cnn"`` (``model.stem: cnn`` runs).

    Returns:
        The ViT in eval mode, float32, on CPU; ``model(x)`` maps ``(batch, 3, H, W)`` to CLS
        embeddings ``(batch, embed_dim)``.

    Raises:
        FileNotFoundError: ``path`` does not exist (with download instructions).
        ValueError: the file does not fit ``arch``/``patch_size``; the message lists the
            mismatched keys and shapes and the architecture the file fits.
    """
    tag = parse_hub_tag(path)
    if tag is not None:
        return _load_hub_backbone(tag)
    checkpoint = read_dino_checkpoint(_existing_file(path, arch, patch_size))
    state_dict = checkpoint.backbone(source)
    info = describe_backbone_state(state_dict)
    img_size = info.get("grid", 224 // patch_size) * patch_size
    model = create_vit(arch, patch_size=patch_size, img_size=img_size, stem=stem)
    _load_backbone_state(model, state_dict, f"{path} ({checkpoint.kind}, {source} backbone)")
    return model.float().eval()


def load_dino_weights(
    student: nn.Module,
    teacher: nn.Module,
    path: str | Path,
    *,
    load_head: bool = True,
    source: Source = "teacher",
) -> dict:
    """Load an official DINO file into a student and a teacher :class:`MultiCropWrapper`.

    Both networks start from the same weights (AMA/docs/method.md): by default the file's *teacher*
    backbone (the one DINO publishes as ``*_pretrain.pth``) and, when the file has one and
    ``load_head`` is set, its teacher head. ``source="student"`` uses the file's student for both;
    ``source="each"`` loads student into student and teacher into teacher (to resume DINO).

    Args:
        student: Wrapper with ``.backbone`` (timm ViT) and ``.head`` (DINO head); may be DDP.
        teacher: Same architecture as ``student``.
        path: Backbone-only file or full checkpoint (not a hub tag).
        load_head: Load head weights when the file has them (an error if they do not fit).
        source: ``"teacher"``, ``"student"`` or ``"each"``.

    Returns:
        A report ``{"path", "kind", "backbone_source", "head_loaded", "head_source",
        "pos_embed_resampled", "epoch", "dino_center"}``; ``dino_center`` is the file's DINO loss
        centre ``(1, K)`` (or ``None``) for :class:`amalib.losses.dino.DINOLoss`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: backbone or head do not fit (keys and shapes listed, architecture suggested).
    """
    if source not in ("teacher", "student", "each"):
        raise ValueError(f"source must be 'teacher', 'student' or 'each', got {source!r}")
    if parse_hub_tag(path) is not None:
        raise ValueError("load_dino_weights needs a local file; hub tags carry no DINO head")
    path = Path(path).expanduser()
    if not path.is_file():
        backbone = getattr(_unwrap(student), "backbone", None)
        arch = None
        if backbone is not None and hasattr(backbone, "embed_dim"):
            arch = describe_backbone_state(backbone.state_dict()).get("arch")
        patch = getattr(getattr(backbone, "patch_embed", None), "patch_size", (None,))[0]
        raise FileNotFoundError(
            f"DINO checkpoint not found: {path}\n"
            f"amalib never falls back to random weights. {_download_hint(arch, patch)}"
        )
    checkpoint = read_dino_checkpoint(path)
    targets = {"student": _unwrap(student), "teacher": _unwrap(teacher)}
    resampled = False
    head_loaded = False
    for name, wrapper in targets.items():
        file_source = name if source == "each" else source
        origin = f"{path} ({checkpoint.kind}, {file_source} backbone -> {name})"
        resampled |= _load_backbone_state(wrapper.backbone, checkpoint.backbone(file_source), origin)
        head_state = checkpoint.head(file_source) if load_head else None
        if head_state is not None:
            _load_head_state(wrapper.head, head_state, f"{path} ({file_source} head -> {name})")
            head_loaded = True
    return {
        "path": str(path),
        "kind": checkpoint.kind,
        "backbone_source": source if checkpoint.kind == "full" else "backbone",
        "head_loaded": head_loaded,
        "head_source": source if head_loaded else None,
        "pos_embed_resampled": resampled,
        "epoch": checkpoint.epoch,
        "dino_center": checkpoint.center,
    }


def save_backbone(model: nn.Module, path: str | Path, *, half: bool = False) -> Path:
    """Write a backbone state dict in DINO's official key layout (like ``*_pretrain.pth``).

    Args:
        model: A timm ViT, or a wrapper with a ``.backbone`` (DDP is unwrapped).
        path: Output file; parent folders are created.
        half: Store floating tensors as float16 (halves the size; :func:`load_dino_backbone`
            casts back to float32).

    Returns:
        The path written.
    """
    model = _unwrap(model)
    backbone = getattr(model, "backbone", model)
    state = {}
    for key, value in backbone.state_dict().items():
        value = value.detach().to("cpu").clone()
        if half and value.is_floating_point():
            value = value.half()
        state[key] = value
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path
