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

from amalib.config import ConfigError

__all__ = ["build_eval_datasets", "starting_backbone"]


def build_eval_datasets(dcfg: dict, root: str | Path, spec) -> dict:
    """The evaluation datasets of a config's ``data`` section, for a benchmark already on disk.

    One set of datasets: the test splits with the evaluation transform (``data.eval_resize``,
    ``data.eval_crop``), the training splits (for clustering) with the cluster transform
    (``data.cluster_resize``, ``data.cluster_crop``). Both resize with
    ``data.resize_interpolation``: bicubic (amalib) or bilinear (torchvision's default, the
    release's); run configs written before the key existed resized bicubically.

    Args:
        dcfg: The config's ``data`` section.
        root: The benchmark's data root (generated already when the config generates it).
        spec: Its :class:`~amalib.data.benchmarks.BenchmarkSpec` (``resolve_benchmark``).

    Returns:
        :func:`amalib.data.datasets.build_eval_sets`: ``sketch_test``/``photo_test`` (labelled,
        unseen classes) and ``sketch_train``/``photo_train`` (seen classes, training-list
        order), among others.

    Raises:
        ConfigError: ``data.resize_interpolation`` names no interpolation.
    """
    from amalib.data.datasets import build_eval_sets
    from amalib.data.transforms import eval_transform

    interpolation = dcfg.get("resize_interpolation", "bicubic")  # absent from older configs
    try:
        test_tf = eval_transform(dcfg["eval_resize"], dcfg["eval_crop"], interpolation=interpolation)
    except ValueError as err:
        raise ConfigError(f"data.resize_interpolation: {err}") from err
    return build_eval_sets(
        root, spec, test_tf,
        train_transform=eval_transform(dcfg["cluster_resize"], dcfg["cluster_crop"],
                                       interpolation=interpolation),
    )


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
                          img_size=mcfg["img_size"], stem=mcfg.get("stem", "patch"))
    return load_dino_backbone(pretrained, arch=mcfg["arch"], patch_size=mcfg["patch_size"],
                              stem=mcfg.get("stem", "patch"))
