"""Zero-shot retrieval evaluation of a backbone on a benchmark's unseen classes."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from amalib.engine.features import FeatureSet, extract_features

__all__ = ["test_features", "evaluate_backbone", "load_trained_backbone"]


def test_features(backbone: nn.Module, eval_sets: dict, *, batch_size: int = 256,
                  device="cpu", num_workers: int = 0, progress: bool = True
                  ) -> tuple[FeatureSet, FeatureSet]:
    """Features of the unseen-class sketches (queries) and photos (gallery)."""
    kw = dict(batch_size=batch_size, device=device, num_workers=num_workers, progress=progress)
    return (extract_features(backbone, eval_sets["sketch_test"], desc="sketch_test", **kw),
            extract_features(backbone, eval_sets["photo_test"], desc="photo_test", **kw))


def evaluate_backbone(backbone: nn.Module, eval_sets: dict, *, ap: str = "interpolated",
                      **kwargs) -> dict:
    """mAP@all, mAP@200, P@100, P@200 of ``backbone`` (see :mod:`amalib.metrics`)."""
    from amalib.metrics import evaluate_retrieval

    q, g = test_features(backbone, eval_sets, **kwargs)
    return evaluate_retrieval(q.features[q.valid], q.labels[q.valid], g.features[g.valid],
                              g.labels[g.valid], ap=ap)


def load_trained_backbone(checkpoint: str | Path, *, which: str = "teacher") -> tuple[nn.Module, dict]:
    """The teacher (retrieval) backbone of an ``amalib train`` checkpoint, and its config.

    Raises:
        FileNotFoundError: the checkpoint does not exist.
    """
    from amalib.engine.state import load_checkpoint
    from amalib.models import create_vit

    state = load_checkpoint(checkpoint)
    cfg = state["config"]["model"]
    backbone = create_vit(cfg["arch"], patch_size=cfg["patch_size"], img_size=cfg["img_size"],
                          stem=cfg.get("stem", "patch"))
    prefix = "backbone."
    weights = {k[len(prefix):]: v for k, v in state[which].items() if k.startswith(prefix)}
    backbone.load_state_dict(weights, strict=True)
    return backbone.eval(), state["config"]

