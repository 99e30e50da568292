"""Tiny-benchmark parameters and config overrides shared by the engine and tutorial tests."""

from __future__ import annotations

TINY_DATA = {
    "seed": 0, "image_size": 32, "n_seen": 4, "n_unseen": 2, "sketches_per_class": 8,
    "photos_per_class": 6, "test_sketches_per_class": 3, "test_photos_per_class": 4,
    "n_pretrain_classes": 2, "pretrain_photos_per_class": 8,
    # busy, as the tests were written for; the mini config and the generator default to calm
    "photo_style": "busy",
}  # fmt: skip


def tiny_values(root) -> dict:
    """Config values that scale the mini config down to the tiny benchmark and a 2-block ViT."""
    gen = ", ".join(f"{k}: {v}" for k, v in TINY_DATA.items())
    crops = "{global_size: 32, local_size: 16, n_global: 2, n_local: 2, " \
            "global_scale: [0.5, 1.0], local_scale: [0.2, 0.5]}"
    return {
        "data.root": str(root), "data.generate": "{" + gen + "}", "data.batch_size": 8,
        "data.num_workers": 0, "data.sketch_crops": crops, "data.photo_crops": crops,
        "data.cluster_resize": 32, "data.cluster_crop": 32, "data.eval_resize": 32,
        "data.eval_crop": 32, "data.eval_batch_size": 16,
        "model.arch": "vit_micro", "model.img_size": 32, "model.out_dim": 64,
        "model.hidden_dim": 32, "model.bottleneck_dim": 16, "model.pretrained": "none",
        "train.lr": 1.0e-3, "loss.cluster.granularities": "[2, 4]", "loss.cluster.n_redo": 1,
    }


def tiny_overrides(root, **extra) -> list[str]:
    """``KEY=VALUE`` overrides for a 2-epoch, 2-step run with every term on from epoch 1."""
    values = {
        **tiny_values(root),
        "train.epochs": 2, "train.log_every": 1, "train.max_steps_per_epoch": 2,
        "loss.schedule.cc_start_epoch": 1, "loss.schedule.cc_ramp_end_epoch": 1,
        "loss.schedule.ma_start_epoch": 1, "loss.schedule.sg_start_epoch": 1,
        **extra,
    }
    return [f"{k}={v}" for k, v in values.items()]
