"""Zero-shot retrieval evaluation of a backbone on a benchmark's unseen classes."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from amalib.retrieval.features import FeatureSet, extract_features

__all__ = ["test_features", "evaluate_backbone", "load_trained_backbone", "within_set_map",
           "mean_pairwise_cosine", "adapt_batch_norm", "backbone_report", "features_report", "evaluate_protocol",
           "protocol_report"]


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


def evaluate_protocol(backbone: nn.Module, eval_sets: dict, protocol: str = "zs", *,
                      ap: str | None = None, convention: str | None = None, hub_k: int = 10,
                      **kwargs) -> dict:
    """:func:`protocol_report` of ``backbone`` on ``eval_sets`` (``kwargs``: extraction options).

    ``gzs`` also extracts ``eval_sets["photo_seen"]`` (the seen-class photos).
    """
    from amalib.protocols import PROTOCOLS

    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    sketches, photos = test_features(backbone, eval_sets, **kwargs)
    seen = None
    if protocol == "gzs":
        seen = extract_features(backbone, eval_sets["photo_seen"], desc="photo_seen", **kwargs)
    names = eval_sets["photo_test"].class_names
    paths = {"sketch": eval_sets["sketch_test"].paths, "photo": eval_sets["photo_test"].paths,
             "seen": eval_sets["photo_seen"].paths if seen is not None else None}
    return protocol_report(protocol, sketches, photos, seen, ap=ap, convention=convention,
                           hub_k=hub_k, class_names=names, paths=paths)


def protocol_report(protocol: str, sketches: FeatureSet, photos: FeatureSet,
                    seen_photos: FeatureSet | None = None, *, ap: str | None = None,
                    convention: str | None = None, hub_k: int = 10, class_names=None, paths: dict | None = None,
                    n_hubs: int = 5) -> dict:
    """Metrics of one protocol from extracted features, with per-class AP and hubness.

    Args:
        protocol: ``"zs"`` (sketches → unseen photos), ``"p2s"`` (photos → sketches) or
            ``"gzs"`` (sketches → unseen + seen photos; needs ``seen_photos``).
        sketches, photos: Unseen-class features (see :func:`test_features`).
        seen_photos: Seen-class photo features, for ``gzs``.
        ap, convention: How to read the metrics (:func:`amalib.metrics.evaluate_retrieval`;
            default: the release's).
        hub_k: List length of the hubness diagnostic.
        class_names: Unseen class names by id.
        paths: ``{"sketch", "photo", "seen"}`` image paths, to name the hubs.
        n_hubs: How many hubs to name.

    Returns:
        The metrics of :mod:`amalib.metrics` (plus ``seen_share@K`` for gzs), ``protocol``,
        ``per_class`` (:func:`amalib.protocols.per_class_ap`, hardest first), ``hubness``
        (:meth:`amalib.protocols.HubnessReport.summary`, each hub with its ``path``) and for
        gzs ``zs``, the zs metrics of the same features (the gallery without seen photos).
    """
    import numpy as np
    import torch

    from amalib.metrics import METRIC_KEYS, evaluate_retrieval
    from amalib.protocols import evaluate_generalized, hubness, per_class_ap

    paths = paths or {}

    def kept(fs: FeatureSet, names=None):
        valid = fs.valid.numpy()
        listed = None if names is None else [p for p, v in zip(names, valid) if v]
        return fs.features[fs.valid], fs.labels[fs.valid], listed

    (sf, sl, sp), (pf, pl, pp) = kept(sketches, paths.get("sketch")), kept(photos, paths.get("photo"))
    if protocol == "p2s":
        (qf, ql), (gf, gl, gp) = (pf, pl), (sf, sl, sp)
    else:
        (qf, ql), (gf, gl, gp) = (sf, sl), (pf, pl, pp)
    if protocol == "gzs":
        if seen_photos is None:
            raise ValueError("the gzs protocol needs the seen-class photo features")
        xf, xl, xp = kept(seen_photos, paths.get("seen"))
        result = evaluate_generalized(qf, ql, gf, gl, xf, xl, ap=ap, convention=convention,
                                      per_query=True)
        zs = evaluate_retrieval(qf, ql, gf, gl, ap=ap, convention=convention)
        result["zs"] = {key: zs[key] for key in METRIC_KEYS}
        gf = torch.cat([gf, xf])
        gp = None if gp is None or xp is None else gp + xp
    elif protocol in ("zs", "p2s"):
        result = evaluate_retrieval(qf, ql, gf, gl, ap=ap, convention=convention,
                                    per_query=True)
    else:
        raise ValueError(f"protocol must be zs, gzs or p2s, got {protocol!r}")
    per_query = result.pop("per_query")
    result["protocol"] = protocol
    result["per_class"] = per_class_ap(per_query["mAP@all"], ql, class_names)
    hubs = hubness(qf, gf, k=hub_k, n_hubs=n_hubs)
    result["hubness"] = hubs.summary(n_hubs)
    if gp is not None:
        for hub in result["hubness"]["hubs"]:
            hub["path"] = gp[hub["index"]]
    result["hubness"]["counts_histogram"] = np.bincount(hubs.counts).tolist()
    return result


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


def adapt_batch_norm(backbone: nn.Module, batches) -> nn.Module:
    """Move ``backbone``'s batch-norm statistics as AMA's training steps do, with no weight update.

    In a training step the student forwards every crop in train mode (consecutive crops of one
    resolution in one call, the ``B`` sketches and ``B`` photos of a crop together), which updates
    its batch-norm running statistics; the EMA update then copies the student's buffers to the
    teacher. This forwards ``batches`` (as yielded by :meth:`amalib.train.Trainer.batches`) the
    same way under ``torch.no_grad()``. During the head warm-up
    (``train.freeze_backbone_epochs``) the backbone's weights do not move, so the teacher's
    backbone after those steps is exactly this. No label is read.

    Args:
        backbone: Modified in place (running statistics only).
        batches: ``{domain: (crops, indices)}`` per step; ``crops`` crop-major, global first.

    Returns:
        ``backbone``, in eval mode.
    """
    import torch

    from amalib.models.wrapper import MultiCropWrapper

    device = next(backbone.parameters()).device
    # The student's own forward over the crops (one call per run of one resolution), headless.
    forward = MultiCropWrapper(backbone, nn.Identity()).forward_backbone
    backbone.train()
    with torch.no_grad():
        for batch in batches:
            forward([torch.cat([s, p]).to(device)
                     for s, p in zip(batch["sketch"][0], batch["photo"][0])])
    return backbone.eval()


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
    """The teacher (retrieval) backbone of a trained run, and its config.

    Args:
        checkpoint: An ``amalib train`` checkpoint, a trained model exported from one (kind
            ``ama-model``, float16, read back as float32), or the name of a model that ships
            with amalib: ``"ama_mini"`` (:data:`amalib.checkpoint_io.SHIPPED_MODELS`).
        which: ``"teacher"`` or ``"student"`` (a training checkpoint only).

    Raises:
        FileNotFoundError: the checkpoint does not exist (a shipped model's message says how to
            get its file back).
        amalib.errors.CheckpointError: a truncated file, a file of another kind (an index, a DINO
            backbone, a supervised pretraining checkpoint, …) or weights that do not fit the
            checkpoint's own config (the message names the file and what fits it).
    """
    from amalib.checkpoint_io import checkpoint_kind, load_checkpoint, resolve_checkpoint
    from amalib.config import upgrade
    from amalib.errors import CheckpointError
    from amalib.models import create_vit

    path = resolve_checkpoint(checkpoint)
    state = load_checkpoint(path, expect=("ama", "pretrain", "ama-model"))
    exported = checkpoint_kind(state) == "ama-model"
    if exported and which != "teacher":
        raise CheckpointError(f"{path} holds only the teacher of its run (an exported model), "
                              f"not its {which}")
    # The stored config as today's code reads it: keys added since it was written get the
    # defaults that reproduce the run (amalib.config.upgrade).
    config = upgrade(state["config"])
    cfg = config["model"]
    try:
        backbone = create_vit(cfg["arch"], patch_size=cfg["patch_size"], img_size=cfg["img_size"],
                              stem=cfg["stem"])
        prefix = "backbone."
        # float32 whatever the file stores (an exported model is float16)
        weights = {k[len(prefix):]: v.float() if v.is_floating_point() else v
                   for k, v in state[which].items() if k.startswith(prefix)}
        backbone.load_state_dict(weights, strict=True)
    except (KeyError, ValueError, RuntimeError) as err:
        detail = str(err).splitlines()[0][:200]
        writer = "it was exported" if exported else "`amalib train` wrote it"
        raise CheckpointError(
            f"{path}: its {which} weights do not fit the model its own config describes "
            f"({cfg.get('arch')}/{cfg.get('patch_size')}: {detail}); the file was changed after "
            f"{writer}: use the file as written") from None
    return backbone.eval(), config
