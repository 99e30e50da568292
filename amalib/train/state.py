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

__all__ = ["rng_state", "set_rng_state", "seed_everything", "export_teacher",
           "export_trained_model"]


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


def export_trained_model(checkpoint: str | Path, out: str | Path, *, provenance: dict,
                         metrics: list[dict] | None = None) -> Path:
    """Write a run's teacher backbone as a small trained model (kind ``ama-model``, float16).

    The file holds ``teacher`` (the ``backbone.*`` weights in float16: the DINO head, the
    student and the optimiser state are left out, retrieval needs none of them), the run's
    resolved ``config``, its ``epoch``, ``provenance`` (plain strings, numbers, lists and dicts:
    how the run was made and what it scores) and ``metrics`` (the run's ``metrics.jsonl``
    records; default: the checkpoint's history). Everything loads with ``weights_only=True``;
    :func:`amalib.retrieval.evaluate.load_trained_backbone` reads it back in float32.
    ``benchmarks/export_shipped_model.py`` writes the shipped ``amalib/assets/ama_mini.pth``.
    """
    state = load_checkpoint(checkpoint, expect="ama")
    weights = {k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu())
               for k, v in state["teacher"].items() if k.startswith("backbone.")}
    payload = {"kind": "ama-model", "teacher": weights, "config": state["config"],
               "epoch": int(state["epoch"]), "provenance": dict(provenance),
               "metrics": list(state.get("history", []) if metrics is None else metrics)}
    return save_checkpoint(payload, out)
