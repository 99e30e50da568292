"""What a run builds from its config besides the networks: the evaluation datasets and the
backbone it starts from.

One piece of code for the :class:`~amalib.train.trainer.Trainer` (``_setup_data``,
``_setup_models``) and for the notebooks (:func:`amalib.tutorial.eval_sets`,
:func:`amalib.tutorial.load_starting_backbone`), so that a notebook evaluates and starts from
exactly what a training run does.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from amalib.config import eval_transform_from_config

__all__ = ["build_eval_datasets", "starting_backbone"]


def build_eval_datasets(cfg: dict, root: str | Path, spec) -> dict:
    """The evaluation datasets of a config, for a benchmark already on disk.

    One set of datasets: the test splits with the evaluation transform, the training splits
    (for clustering) with the cluster transform (:func:`amalib.config.eval_transform_from_config`:
    ``data.eval_*`` / ``data.cluster_*`` sizes, ``data.resize_interpolation``).

    Args:
        cfg: The (upgraded) config.
        root: The benchmark's data root (generated already when the config generates it).
        spec: Its :class:`~amalib.data.benchmarks.BenchmarkSpec` (``resolve_benchmark``).

    Returns:
        :func:`amalib.data.datasets.build_eval_sets`: ``sketch_test``/``photo_test`` (labelled,
        unseen classes) and ``sketch_train``/``photo_train`` (seen classes, training-list
        order), among others.
    """
    from amalib.data.datasets import build_eval_sets

    return build_eval_sets(root, spec, eval_transform_from_config(cfg, "eval"),
                           train_transform=eval_transform_from_config(cfg, "cluster"))


def starting_backbone(mcfg: dict, pretrained: str | None, *, seed: int = 0) -> nn.Module:
    """The ViT of a config's ``model`` section with the weights a run starts from.

    Args:
        mcfg: The config's ``model`` section (``arch``, ``patch_size``, ``img_size``, ``stem``).
        pretrained: ``model.pretrained`` as :func:`amalib.train.trainer.resolve_pretrained`
            returns it: a weights file or ``hub:<timm tag>``, loaded strictly
            (:func:`amalib.models.load_dino_backbone`); ``None``: random initial weights drawn
            after ``torch.manual_seed(seed)`` — on purpose only.

    Raises:
        ValueError: the weights do not fit ``model.arch``/``model.patch_size``/``model.stem``.
    """
    import torch

    from amalib.models import create_vit, load_dino_backbone

    if pretrained is None:
        torch.manual_seed(seed)
        return create_vit(mcfg["arch"], patch_size=mcfg["patch_size"],
                          img_size=mcfg["img_size"], stem=mcfg["stem"])
    return load_dino_backbone(pretrained, arch=mcfg["arch"], patch_size=mcfg["patch_size"],
                              stem=mcfg["stem"])
