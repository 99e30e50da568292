"""Checkpoint files: atomic writes, ``weights_only`` loading, and what kind of file a path holds.

A checkpoint is written to a temporary file in the same folder and renamed over the old one, so
a crash mid-write never leaves a truncated checkpoint. Every reader goes through
:func:`read_torch_file` (``torch.load(..., weights_only=True)``), which turns a truncated,
damaged or foreign file into one :class:`~amalib.errors.CheckpointError` naming the file and
what to do with it. The training state itself (what a checkpoint holds) is
:mod:`amalib.train.state`'s business.
"""


from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["save_checkpoint", "load_checkpoint", "read_torch_file", "checkpoint_kind",
           "CHECKPOINT_KINDS", "what_to_do_with", "SHIPPED_MODELS", "resolve_checkpoint",
           "names_package_file"]

#: Trained models that ship with amalib, by the name ``--checkpoint`` accepts, and their file
#: inside the installed package. ``ama_mini``: the teacher of ``amalib demo --seed 0`` (the
#: ``mini`` preset, 6 epochs), float16, written by ``benchmarks/export_shipped_model.py``.
SHIPPED_MODELS = {"ama_mini": "assets/ama_mini.pth"}

#: The command that writes a shipped model again (from a demo run's directory).
EXPORT_COMMAND = ("`amalib demo --seed 0`, then `python benchmarks/export_shipped_model.py runs/demo "
                  "--out amalib/assets/ama_mini.pth`")


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically (temp file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


#: What each kind of file holds, for messages that name both sides of a mix-up.
CHECKPOINT_KINDS = {
    "ama": "an `amalib train` checkpoint",
    "ama-model": "a trained AMA model (a run's teacher backbone in float16 with its config and "
                 "provenance, e.g. the shipped `ama_mini`; no training state)",
    "pretrain": "a DINO pretraining checkpoint (`amalib pretrain`, pretrain.objective=dino)",
    "pretrain-supervised": "a supervised pretraining checkpoint (`amalib pretrain`, "
                           "pretrain.objective=supervised)",
    "backbone": "a DINO-style backbone file (official DINO weights or `amalib pretrain --export`)",
    "index": "an amalib gallery index (`amalib index build`)",
    "unknown": "a PyTorch file amalib does not know (no config, teacher or backbone weights)",
}


def checkpoint_kind(state) -> str:
    """What a loaded checkpoint holds: a key of :data:`CHECKPOINT_KINDS`.

    Training checkpoints record it (``mode``: ``ama``, ``pretrain`` or ``pretrain-supervised``,
    beside their ``config``); exported backbones say ``kind: backbone``; DINO's own files are
    recognised by their layout (``teacher``/``student`` entries, or a dict of tensors).
    """
    if not isinstance(state, dict):
        return "unknown"
    if state.get("kind") == "ama-model":  # before "ama": it has a config and a teacher too
        return "ama-model"
    mode = state.get("mode")
    if mode == "pretrain-supervised":
        return mode
    if "config" in state and "teacher" in state:  # no mode: written before checkpoints had one
        return mode if mode in ("ama", "pretrain") else "ama"
    if state.get("kind") == "backbone" or isinstance(state.get("teacher"), dict) or \
            isinstance(state.get("student"), dict) or isinstance(state.get("model"), dict) or \
            isinstance(state.get("state_dict"), dict):
        return "backbone"
    if state and all(isinstance(v, torch.Tensor) for v in state.values()):
        return "backbone"
    return "unknown"


def what_to_do_with(kind: str, path) -> str:
    """The command that fits a file of ``kind`` at ``path``."""
    return {
        "ama": f"use it with `amalib eval --checkpoint {path}`, `amalib index build "
               f"--checkpoint {path} ...` or `amalib train --resume {path}`",
        "pretrain": f"continue it with `amalib pretrain --resume {path}`, or export its teacher "
                    f"with `amalib pretrain --resume {path} --export backbone.pth` and train "
                    "from that with --set model.pretrained=backbone.pth",
        "pretrain-supervised": f"continue it with `amalib pretrain --resume {path}` "
                               "(pretrain.objective=supervised), or export its backbone with "
                               "--export and train from that with --set model.pretrained=...",
        "backbone": f"it is a starting point: train from it with `amalib train --set "
                    f"model.pretrained={path}`",
        "ama-model": f"use it with `amalib eval --checkpoint {path}`, `amalib retrieve "
                     f"--checkpoint {path} ...` or `amalib index build --checkpoint {path} ...` "
                     "(it holds no optimiser state, so training cannot resume from it)",
        "index": f"use it with `amalib retrieve --index {path}`",
    }.get(kind, "pass a checkpoint.pth written by `amalib train` (runs/<name>/checkpoint.pth)")


def _sniff(path: Path) -> str | None:
    """What a file that torch cannot read looks like: a key of CHECKPOINT_KINDS or a phrase."""
    import zipfile

    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    if not head:
        return "an empty file"
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return None  # a damaged zip: a truncated checkpoint (or index)
        if "meta.npy" in names and "features.npy" in names:
            return "index"
        return None if any(n.endswith("data.pkl") for n in names) else "a zip archive"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF")):
        return "an image"
    if head.startswith(b"\x93NUMPY"):
        return "a numpy array file"
    if head.lstrip()[:1] in (b"{", b"["):
        return "a JSON file"
    if head[:1] == b"\x80":  # a pickle: PyTorch's legacy format
        return None
    return "not a PyTorch file"


def read_torch_file(path: str | Path, *, what: str = "checkpoint", map_location="cpu",
                    safe_globals=()) -> object:
    """``torch.load(path, weights_only=True)``; a file it cannot read is a :class:`CheckpointError`.

    The message names the file, what it looks like (a truncated file, an index, an image, a
    file holding Python objects, …) and what to pass instead; it never suggests loading a file
    unsafely.

    Raises:
        FileNotFoundError: no file at ``path`` (a folder holding a ``checkpoint.pth`` is named).
        CheckpointError: the file is not one that ``torch.load`` reads with ``weights_only``.
    """
    import errno
    import pickle

    from amalib.errors import CheckpointError

    path = Path(path)
    if path.is_dir():
        inside = path / "checkpoint.pth"
        raise FileNotFoundError(f"{path} is a folder, not a {what} file"
                                + (f"; pass {inside}" if inside.is_file() else ""))
    def damaged(detail: str) -> CheckpointError:
        return CheckpointError(
            f"{path} is truncated or damaged ({detail}); it was not written completely or was "
            "changed since: use an intact copy, or write it again")

    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except (OSError, MemoryError) as err:
        # torch's zip reader answers a file cut short inside its archive with EINVAL; every
        # other OSError (permissions, a full disk, ...) is about the machine, not the file.
        if not (isinstance(err, OSError) and err.errno == errno.EINVAL):
            raise
        looks = _sniff(path)
        if looks is None:
            raise damaged("its archive cannot be read") from None
    except pickle.UnpicklingError as err:
        looks = _sniff(path)
        if looks is None and "weights only" in str(err).lower():
            raise CheckpointError(
                f"{path} holds Python objects besides tensors, which amalib does not load (it "
                f"reads {what}s with weights_only=True, so loading runs no code); pass a {what} "
                "written by amalib or DINO") from None
        if looks is None:
            looks = "not a PyTorch file"
    except Exception as err:  # torch's reader: RuntimeError, EOFError, ValueError, ...
        looks = _sniff(path)
        if looks is None:
            raise damaged(str(err).split(". ")[0].strip().rstrip(".")) from None
    if looks == "not a PyTorch file":
        raise CheckpointError(f"{path} is not a {what} (not a PyTorch file); "
                              f"{what_to_do_with(looks, path)}")
    raise CheckpointError(f"{path} is not a {what}: it is {CHECKPOINT_KINDS.get(looks, looks)}; "
                          f"{what_to_do_with(looks, path)}")


def _package_file(text: str) -> str | None:
    """The file inside the installed amalib that a shipped name or ``package:<file>`` names."""
    inside = SHIPPED_MODELS.get(text)
    if inside is None and text.startswith("package:"):
        inside = text[len("package:"):]
    return inside


def names_package_file(spec: str | Path) -> bool:
    """Whether :func:`resolve_checkpoint` reads ``spec`` inside amalib (a shipped model's name or
    ``package:<file>``) rather than as a path."""
    return _package_file(str(spec)) is not None


def resolve_checkpoint(spec: str | Path) -> Path:
    """The file a ``--checkpoint`` value names: a path, or a shipped model's name.

    A name of :data:`SHIPPED_MODELS` (``ama_mini``) or ``package:assets/<file>`` resolves inside
    the installed amalib; anything else is a path. To pass a local file that happens to be
    called ``ama_mini``, write ``./ama_mini``.

    Raises:
        FileNotFoundError: a shipped model whose file is not installed (the message names the
            file and how to get it back).
    """
    from importlib import resources

    text = str(spec)
    inside = _package_file(text)
    if inside is None:
        return Path(spec)
    path = Path(str(resources.files("amalib") / inside))
    if not path.is_file():
        raise FileNotFoundError(
            f"the shipped model {text!r} is not installed: {path} is missing. Reinstall amalib "
            "(pip install --force-reinstall amalib, or `git checkout amalib/assets` in a "
            f"checkout), or write it again: {EXPORT_COMMAND}")
    return path


def load_checkpoint(path: str | Path, map_location="cpu", *, expect=None) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Args:
        path: The file, or the name of a model that ships with amalib (``ama_mini``, see
            :func:`resolve_checkpoint`).
        map_location: Where tensors go.
        expect: Kinds of :data:`CHECKPOINT_KINDS` the caller can use (e.g. ``("ama",
            "pretrain")``); another kind is a :class:`~amalib.errors.CheckpointError` naming
            what the file is and the command that fits it. ``None``: any.

    Raises:
        FileNotFoundError: naming the path (a missing checkpoint is never a random init).
        CheckpointError: a truncated or damaged file, or one of another kind.
    """
    path = resolve_checkpoint(path)
    if not path.exists():
        raise FileNotFoundError(
            f"checkpoint not found: {path}. Pass the path of a file written by `amalib train` "
            "(e.g. runs/<name>/checkpoint.pth) or the name of a model that ships with amalib ("
            + ", ".join(SHIPPED_MODELS) + ")."
        )
    state = read_torch_file(path, map_location=map_location)
    if expect is not None:
        expect = (expect,) if isinstance(expect, str) else tuple(expect)
        kind = checkpoint_kind(state)
        if kind not in expect:
            from amalib.errors import CheckpointError

            wanted = " or ".join(dict.fromkeys(CHECKPOINT_KINDS[k] for k in expect))
            raise CheckpointError(f"{path} is {CHECKPOINT_KINDS[kind]}, not {wanted}; "
                                  f"{what_to_do_with(kind, path)}")
    return state


