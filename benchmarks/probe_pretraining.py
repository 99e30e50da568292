"""Pretraining probe: does plain DINO give the embedded ViT a genuine starting backbone (issue 6)?

Runs ``amalib pretrain`` (plain DINO on the mini-benchmark's extra photo classes, no labels) with
the given overrides and, before training and every ``--every`` epochs, probes the teacher
backbone's retrieval with labels that no loss ever sees:

* **validation** (used to choose a pretraining recipe): the *seen* classes' training images,
  sketch->photo, photo->photo and sketch->sketch (within a domain, the even-indexed images query
  the odd-indexed ones);
* **unseen** (reported, never used to choose): the test split, the same three.

Two probes look for what the features encode instead of the class: unseen photo->photo
retrieval with each photo's *background kind* as the label (gradient, colour noise, patches,
stripes; :func:`amalib.data.synthetic.photo_background_kinds`; chance about 0.25), and the mean
pairwise cosine of the unseen sketches' features (1.0 = every sketch on one point). With
``--export`` the final teacher is written like ``amalib pretrain --export``.

``--conv-stem`` swaps the ViT's patchify projection, in this process only, for 3x3 convolutions
with batch norm and ReLU (one at stride 1 with 48 channels, then log2(patch) at stride 2 with
96, 192, 192, ... channels) and a 1x1 projection to the ViT width: the ``vit-convstem`` of
``probe_learnability.py`` with one more full-resolution layer in front. It is an experiment,
not an amalib architecture, so it cannot be combined with ``--export``; amalib's own
convolutional stem is ``--set model.stem=cnn`` (:class:`amalib.models.vit.ConvStemEmbed`), which
exports like any model. ``--bn-head`` puts batch
norm after each hidden layer of the DINO head's MLP (DINO's ``--use_bn_in_head``), also in this
process only; the teacher copies the student's batch-norm statistics at every EMA step.

    # on a GPU: 110 pretraining classes x 250 photos, 100 epochs
    python benchmarks/probe_pretraining.py --out runs/pretrain_probe --every 10 \\
        --set data.root=data/mini_pretrain --set data.generate.n_pretrain_classes=110 \\
        --set data.generate.pretrain_photos_per_class=250 --set train.epochs=100
    # no training: random init against exported backbones
    python benchmarks/probe_pretraining.py --out runs/probe_only \\
        --backbones amalib/assets/mini_backbone.pth runs/pretrain_probe/teacher.pth
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time
from pathlib import Path

import torch

from amalib.config import load_config
from amalib.data.benchmarks import read_file_list
from amalib.data.synthetic import photo_background_kinds
from amalib.metrics import evaluate_retrieval
from amalib.models import load_dino_weights
from amalib.retrieval.evaluate import mean_pairwise_cosine, within_set_map
from amalib.retrieval.features import FeatureSet
from amalib.train.state import export_teacher
from amalib.train.trainer import Trainer


def _map(q: FeatureSet, g: FeatureSet, q_rows=None, g_rows=None) -> float:
    qv, gv = q.valid.clone(), g.valid.clone()
    if q_rows is not None:
        qv &= q_rows
        gv &= g_rows
    return evaluate_retrieval(q.features[qv], q.labels[qv], g.features[gv], g.labels[gv])["mAP@all"]


_within = within_set_map


# Re-rendering the photos to recover their backgrounds takes seconds: once per process.
_background_kinds = functools.cache(photo_background_kinds)


def probe(trainer: Trainer) -> dict:
    """Retrieval of the teacher backbone on the seen (validation) and unseen (test) classes."""
    was = trainer.progress
    trainer.progress = False
    f = {s: trainer.extract(s) for s in ("sketch_train", "photo_train", "sketch_test", "photo_test")}
    trainer.progress = was
    # The training splits are unlabelled by design; the probe reads the labels from the lists.
    for d in ("sketch", "photo"):
        rows = read_file_list(trainer.root / getattr(trainer.spec, f"{d}_train"))
        f[f"{d}_train"].labels = torch.tensor([label for _, label in rows])
    out = {}
    for name, (sk, ph) in {"val": ("sketch_train", "photo_train"),
                           "unseen": ("sketch_test", "photo_test")}.items():
        out[f"{name}_s2p"] = _map(f[sk], f[ph])
        out[f"{name}_p2p"] = _within(f[ph])
        out[f"{name}_s2s"] = _within(f[sk])
    # A nuisance: unseen photo->photo retrieval with the photo's background kind as the label.
    kinds = _background_kinds(trainer.root, trainer.spec.photo_test)
    photos = f["photo_test"]
    out["unseen_p2p_background"] = _within(
        FeatureSet(photos.features, photos.valid, torch.from_numpy(kinds)))
    out["sketch_cos"] = mean_pairwise_cosine(f["sketch_test"].features[f["sketch_test"].valid])
    return out


def use_conv_stem() -> None:
    """Make :func:`amalib.models.build_student_teacher` build ViTs with a convolutional stem."""
    from timm.layers import PatchEmbed
    from torch import nn

    import amalib.models.student_teacher as student_teacher
    from amalib.models.vit import create_vit

    class ConvStemEmbed(PatchEmbed):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            patch = self.patch_size[0]
            if patch & (patch - 1):
                raise ValueError(f"--conv-stem needs a power-of-two patch size, got {patch}")
            layers, c = [], 3
            for i in range(1 + int(math.log2(patch))):
                c_out = min(48 * 2**i, 192)
                layers += [nn.Conv2d(c, c_out, 3, 1 if i == 0 else 2, 1, bias=False),
                           nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
                c = c_out
            self.proj = nn.Sequential(*layers, nn.Conv2d(c, self.proj.out_channels, 1))

    student_teacher.create_vit = functools.partial(create_vit, embed_layer=ConvStemEmbed)


def use_bn_head() -> None:
    """Make :func:`amalib.models.build_student_teacher` put batch norm in the head's MLP."""
    import amalib.models.student_teacher as student_teacher

    student_teacher.DINOProjectionHead = functools.partial(
        student_teacher.DINOProjectionHead, use_bn=True)


def summary(r: dict) -> str:
    """One line of probe results."""
    return (f"val s2p {r['val_s2p']:.4f} p2p {r['val_p2p']:.4f} s2s {r['val_s2s']:.4f} | unseen "
            f"s2p {r['unseen_s2p']:.4f} p2p {r['unseen_p2p']:.4f} s2s {r['unseen_s2s']:.4f} | "
            f"unseen p2p by background {r['unseen_p2p_background']:.4f} | sketch cos "
            f"{r['sketch_cos']:.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--config", default="mini_pretrain")
    parser.add_argument("--out", default="runs/pretrain_probe")
    parser.add_argument("--every", type=int, default=10, help="probe every N epochs")
    parser.add_argument("--device", default=None)
    parser.add_argument("--export", default=None, help="write the teacher here at the end")
    parser.add_argument("--conv-stem", action="store_true",
                        help="convolutional stem instead of patchify (see above)")
    parser.add_argument("--bn-head", action="store_true",
                        help="batch norm in the DINO head's MLP (see above)")
    parser.add_argument("--backbones", nargs="+", metavar="PATH",
                        help="no training: probe a random initialisation and these exported "
                             "backbones (amalib pretrain --export files)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    for flag in ("conv_stem", "bn_head"):
        if getattr(args, flag) and args.export:
            parser.error(f"--{flag.replace('_', '-')} builds an experimental model that amalib "
                         "cannot load; drop --export")
    if args.conv_stem:
        use_conv_stem()
    if args.bn_head:
        use_bn_head()

    cfg = load_config(args.config, args.overrides)
    trainer = Trainer(cfg, args.out, device=args.device, mode="pretrain", progress=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "probe.jsonl", "a")

    def report(epoch: int, label: str | None = None) -> None:
        t0 = time.perf_counter()
        r = {"epoch": epoch, **({"backbone": label} if label else {}), **probe(trainer)}
        log.write(json.dumps(r) + "\n")
        log.flush()
        print(f"{label or f'probe after {epoch:>3} epochs'} | {summary(r)} | "
              f"{time.perf_counter() - t0:.1f} s", flush=True)

    if args.backbones:
        report(0, "random init")
        for path in args.backbones:
            load_dino_weights(trainer.student, trainer.teacher, path)
            report(0, path)
        return
    report(0)
    log_epoch = trainer._log_epoch

    def log_and_probe(record: dict) -> None:
        log_epoch(record)
        done = record["epoch"] + 1
        if done % args.every == 0 or done == trainer.epochs:
            report(done)

    trainer._log_epoch = log_and_probe
    t0 = time.perf_counter()
    trainer.fit()
    print(f"pretraining took {time.perf_counter() - t0:.0f} s", flush=True)
    if args.export:
        print("teacher exported to", export_teacher(out / "checkpoint.pth", args.export))


if __name__ == "__main__":
    main()
