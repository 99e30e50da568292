"""Zero-shot retrieval evaluation of a backbone on a benchmark's unseen classes."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from amalib.engine.features import FeatureSet, extract_features

__all__ = ["test_features", "evaluate_backbone", "load_trained_backbone", "within_set_map",
           "mean_pairwise_cosine", "backbone_report", "features_report"]


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


def within_set_map(features: FeatureSet, *, ap: str = "interpolated") -> float:
    """mAP@all inside one labelled set: its even-indexed images query its odd-indexed ones.

    Splitting the set keeps every image out of its own gallery (a self-match would be a free hit
    at rank 1).
    """
    import torch

    from amalib.metrics import evaluate_retrieval

    even = torch.arange(len(features)) % 2 == 0
    q, g = features.valid & even, features.valid & ~even
    return evaluate_retrieval(features.features[q], features.labels[q], features.features[g],
                              features.labels[g], ap=ap)["mAP@all"]


def mean_pairwise_cosine(features) -> float:
    """Mean cosine similarity over all pairs of distinct rows of L2-normalised ``features``.

    1.0 means every input maps to the same direction (a collapsed embedding); a spread-out
    embedding is far below.
    """
    n = len(features)
    if n < 2:
        raise ValueError("need at least two feature rows")
    total = features.sum(0)
    return float((total @ total - (features * features).sum()) / (n * (n - 1)))


def backbone_report(backbone: nn.Module, eval_sets: dict, *, ap: str = "interpolated",
                    **kwargs) -> dict:
    """How genuine a starting backbone is, on the unseen (test) classes.

    Returns ``{"sketch->photo", "photo->photo", "sketch->sketch", "sketch_cosine"}`` (AP
    convention ``ap``): the zero-shot task's mAP@all, the within-domain mAP@all of photos and of sketches
    (:func:`within_set_map`) and the mean pairwise cosine of the sketch queries
    (:func:`mean_pairwise_cosine`). A report only: nothing may be selected on it.
    """
    return features_report(*test_features(backbone, eval_sets, **kwargs), ap=ap)


def features_report(q: FeatureSet, g: FeatureSet, *, ap: str = "interpolated") -> dict:
    """:func:`backbone_report` from already extracted query (sketch) and gallery (photo)
    features, e.g. those of an evaluation that just ran."""
    from amalib.metrics import evaluate_retrieval

    return {
        "sketch->photo": evaluate_retrieval(q.features[q.valid], q.labels[q.valid],
                                            g.features[g.valid], g.labels[g.valid],
                                            ap=ap)["mAP@all"],
        "photo->photo": within_set_map(g, ap=ap),
        "sketch->sketch": within_set_map(q, ap=ap),
        "sketch_cosine": mean_pairwise_cosine(q.features[q.valid]),
    }


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

