"""Calibration probe: how fast can a backbone learn the mini-benchmark at all (issue 6)?

Trains each backbone **with labels** (cross-entropy on the extra pretraining classes, 20 by
default — a calibration, not part of AMA, and never on the test classes) for ``--steps`` steps and
prints, every ``--every`` steps, the training loss (chance: ln 20 = 3.00 for 20 classes) and
zero-shot retrieval on the unseen test classes: photo->photo and sketch->photo mAP@all of the backbone's embedding.

Supervised training on labels is an upper bound on what self-supervised DINO pretraining can
reach in the same number of steps, so this answers whether the embedded pretraining can give a
genuine baseline on a CPU budget. Backbones:

* ``vit``: the embedded preset, ``vit_mini`` with 8 px patches at 48 px (CLS embedding);
* ``vit-convstem``: the same ViT with its patch projection replaced by three stride-2 3x3
  convolutions (Xiao et al., 2021, "Early convolutions help transformers see better");
* ``vit-cnnstem``: the same ViT with ``stem="cnn"`` (:class:`amalib.models.vit.ConvStemEmbed`:
  the CNN's first three stages below, conv + batch norm + ReLU + 2x2 max pooling at 32, 64, 128
  channels, and a 1x1 projection as its patch embedding);
* ``cnn``: four 3x3 conv + batch-norm + ReLU blocks, global average pooling (192-d).

    python benchmarks/probe_learnability.py --steps 300 --every 100 --models vit cnn
    # the calmer photos (generator option photo_style="calm"), in a tree of their own: a root
    # generated with other parameters would be regenerated in place
    python benchmarks/probe_learnability.py --data-root data/mini_calm --photo-style calm
    # a larger pool: 110 classes x 250 photos (the GPU pretraining probe's), the ViT only
    python benchmarks/probe_learnability.py --data-root data/mini_calm_large --photo-style calm \
        --pretrain-classes 110 --pretrain-photos 250 --models vit --steps 1500 --every 300
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torchvision.transforms as T
from torch import nn

from amalib.data.benchmarks import read_file_list, resolve_benchmark
from amalib.data.datasets import build_eval_sets, load_rgb
from amalib.data.synthetic import PHOTO_STYLES, ensure_mini_benchmark
from amalib.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform
from amalib.metrics import evaluate_retrieval
from amalib.models import create_vit
from amalib.retrieval.features import extract_features


def conv_bn_relu(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


def build(name: str) -> nn.Module:
    if name == "cnn":
        return nn.Sequential(*conv_bn_relu(3, 32, 1), nn.MaxPool2d(2), *conv_bn_relu(32, 64, 1),
                             nn.MaxPool2d(2), *conv_bn_relu(64, 128, 1), nn.MaxPool2d(2),
                             *conv_bn_relu(128, 192, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = create_vit("vit_mini", patch_size=8, img_size=48,
                       stem="cnn" if name == "vit-cnnstem" else "patch")
    if name == "vit-convstem":
        model.patch_embed.proj = nn.Sequential(*conv_bn_relu(3, 48, 2), *conv_bn_relu(48, 96, 2),
                                               *conv_bn_relu(96, 192, 2), nn.Conv2d(192, 192, 1))
    elif name not in ("vit", "vit-cnnstem"):
        raise ValueError(f"unknown model {name!r}")
    return model


def evaluate(model: nn.Module, eval_sets: dict) -> tuple[float, float]:
    model.eval()
    feats = {s: extract_features(model, eval_sets[s], batch_size=256, progress=False)
             for s in ("sketch_test", "photo_test")}
    q, g = feats["sketch_test"], feats["photo_test"]
    p2p = evaluate_retrieval(g.features, g.labels, g.features, g.labels)["mAP@all"]
    s2p = evaluate_retrieval(q.features, q.labels, g.features, g.labels)["mAP@all"]
    model.train()
    return p2p, s2p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Not data/mini: that tree is the calm benchmark everything else reads, and a root generated
    # with other parameters is regenerated in place. Give each --photo-style its own root.
    parser.add_argument("--data-root", default="data/mini_busy",
                        help="where to generate the probe's benchmark (its own tree; one per "
                             "photo style, e.g. data/mini_calm with --photo-style calm)")
    parser.add_argument("--photo-style", default="busy", choices=PHOTO_STYLES,
                        help="generate the benchmark with this photo style (see render_photo)")
    parser.add_argument("--pretrain-classes", type=int, default=20,
                        help="extra photo classes to train on (n_pretrain_classes; at most 110)")
    parser.add_argument("--pretrain-photos", type=int, default=100,
                        help="photos per extra class (pretrain_photos_per_class)")
    parser.add_argument("--models", nargs="+", default=["vit", "vit-convstem", "cnn"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    root = ensure_mini_benchmark(args.data_root, photo_style=args.photo_style,
                                 n_pretrain_classes=args.pretrain_classes,
                                 pretrain_photos_per_class=args.pretrain_photos)
    spec = resolve_benchmark(root, "mini")
    items = read_file_list(root / spec.pretrain_photos)
    images = [load_rgb(root / path) for path, _ in items]
    labels = torch.tensor([label for _, label in items])
    n_classes = int(labels.max()) + 1
    augment = T.Compose([T.RandomResizedCrop(48, scale=(0.4, 1.0)), T.RandomHorizontalFlip(),
                         T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    eval_sets = build_eval_sets(root, spec, eval_transform(48, 48))
    print(f"{len(images)} pretraining photos, {n_classes} classes (chance loss "
          f"{math.log(n_classes):.2f}); batch {args.batch}, AdamW lr {args.lr}")
    for name in args.models:
        torch.manual_seed(args.seed)
        model = build(name)
        head = nn.Linear(192, n_classes)
        opt = torch.optim.AdamW([*model.parameters(), *head.parameters()], lr=args.lr,
                                weight_decay=0.05)
        p2p, s2p = evaluate(model, eval_sets)
        print(f"{name:>13} step {0:>5}: untrained          photo->photo {p2p:.3f} "
              f"sketch->photo {s2p:.3f}")
        t0, running = time.perf_counter(), []
        for step in range(1, args.steps + 1):
            idx = torch.randint(0, len(images), (args.batch,)).tolist()
            x = torch.stack([augment(images[i]) for i in idx])
            loss = nn.functional.cross_entropy(head(model(x)), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running.append(loss.item())
            if step % args.every == 0:
                p2p, s2p = evaluate(model, eval_sets)
                print(f"{name:>13} step {step:>5}: loss {sum(running) / len(running):.3f} "
                      f"({time.perf_counter() - t0:.0f} s)  photo->photo {p2p:.3f} "
                      f"sketch->photo {s2p:.3f}", flush=True)
                running = []


if __name__ == "__main__":
    main()
