"""How much of AMA's gain on the embedded benchmark is batch-norm re-estimation?

The embedded starting backbone has a convolutional stem with batch norm whose statistics come
from the pool photos it was pretrained on. In AMA's training step the student forwards every
crop in train mode, which moves its batch-norm running statistics to the seen-class training
sketches and photos, and the EMA update copies the student's buffers to the teacher. During
the head warm-up (epoch 0 of ``mini``) the backbone's weights do not move, so that is all that
changes the teacher's backbone. This probe measures the effect alone: it forwards one epoch of
AMA's training batches (every crop, as the student does, :func:`amalib.retrieval.evaluate.adapt_batch_norm`;
no labels, no gradient) through the starting backbone, or the plain evaluation-transform images
with cumulative statistics, and reports :func:`amalib.retrieval.evaluate.backbone_report` on the
unseen test classes before and after. Nothing is trained and no test image reaches the
statistics.

    python benchmarks/probe_bn_adaptation.py
"""

from __future__ import annotations

import argparse
import tempfile

import torch

from amalib.config import load_config
from amalib.retrieval.evaluate import adapt_batch_norm, backbone_report
from amalib.train.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="mini")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training batches")
    args = parser.parse_args()
    cfg = load_config(args.config, [f"train.seed={args.seed}"])
    trainer = Trainer(cfg, tempfile.mkdtemp(), progress=False, log=lambda _line: None)
    kw = dict(batch_size=cfg["data"]["eval_batch_size"], device=trainer.device, num_workers=0,
              progress=False, ap=cfg["eval"]["ap"])
    backbone = trainer.teacher.backbone
    start = {k: v.clone() for k, v in backbone.state_dict().items()}
    rows = {"starting backbone": backbone_report(backbone, trainer.eval_sets, **kw)}

    # One epoch of AMA's training batches, every crop as the student's forward (running
    # statistics with momentum 0.1): the teacher's backbone after the head warm-up.
    adapt_batch_norm(backbone, trainer.batches(0))
    rows["+ BN statistics of one epoch of training crops"] = backbone_report(
        backbone, trainer.eval_sets, **kw)

    # Cumulative statistics of every training image at the evaluation transform.
    backbone.load_state_dict(start)
    for module in backbone.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    backbone.train()
    batch = int(cfg["data"]["batch_size"])
    sketches, photos = trainer.eval_sets["sketch_train"], trainer.eval_sets["photo_train"]
    with torch.no_grad():
        for i in range(0, min(len(sketches), len(photos)) - batch + 1, batch):
            images = [sketches[j][0] for j in range(i, i + batch)]
            images += [photos[j][0] for j in range(i, i + batch)]
            backbone(torch.stack(images).to(trainer.device))
    rows["+ BN statistics of all training images (cumulative)"] = backbone_report(
        backbone, trainer.eval_sets, **kw)

    keys = ("sketch->photo", "photo->photo", "sketch->sketch", "sketch_cosine")
    print(f"{'backbone':<55}" + "".join(f"{k:>16}" for k in keys))
    for name, report in rows.items():
        print(f"{name:<55}" + "".join(f"{report[k]:>16.4f}" for k in keys))


if __name__ == "__main__":
    main()
