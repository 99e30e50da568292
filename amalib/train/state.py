"""The training state beyond the weights: RNG states, seeding, and exporting a run's teacher.

A training checkpoint holds everything needed to resume: student, teacher, optimiser, gradient
scaler, the DINO centres, epoch and step, RNG states and the config
(:meth:`amalib.train.trainer.Trainer.state_dict`). Files are written and read by
:mod:`amalib.checkpoint_io`.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from amalib.checkpoint_io import load_checkpoint, save_checkpoint

__all__ = ["rng_state", "set_rng_state", "seed_everything", "export_teacher"]


def rng_state() -> dict:
    """Python, numpy and torch RNG states as ``weights_only``-loadable objects."""
    np_state = np.random.get_state()  # noqa: NPY002
    state = {
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate((state["python_version"], tuple(state["python"]), None))
    keys = state["numpy"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy_pos"], 0, 0.0))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeds third-party code)
    torch.manual_seed(seed)


def export_teacher(checkpoint: str | Path, out: str | Path, *, half: bool = True) -> Path:
    """Write a training checkpoint's teacher (backbone + head) as a DINO-style full checkpoint.

    The result has DINO's key layout (``teacher`` → ``backbone.*`` / ``head.*`` with the head's
    ``last_layer.weight_g``/``weight_v``) and loads with
    :func:`amalib.models.load_dino_weights`; ``half`` stores float16 to keep shipped files small.
    """
    from amalib.models.head import to_official_head_keys

    state = load_checkpoint(checkpoint, expect=("ama", "pretrain"))
    teacher = state["teacher"]
    head = to_official_head_keys({k[5:]: v for k, v in teacher.items() if k.startswith("head.")})
    weights = {k: v for k, v in teacher.items() if k.startswith("backbone.")}
    weights.update({f"head.{k}": v for k, v in head.items()})
    if half:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    centres = state.get("dino_loss", {})
    centre = next(iter(centres.values()))["center"] if centres else None
    out = Path(out)
    payload = {"teacher": weights, "epoch": int(state["epoch"]), "kind": "backbone"}
    if centre is not None:
        payload["dino_loss"] = {"center": centre}
    return save_checkpoint(payload, out)
