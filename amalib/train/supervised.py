"""Supervised cross-entropy training of a backbone: the embedded starting backbone and the oracle.

Two uses, both outside AMA itself (AMA never sees a label):

* ``amalib pretrain`` with ``pretrain.objective: supervised`` (the ``mini_pretrain`` config)
  trains the embedded starting backbone on the mini-benchmark's **pool** classes: 20 extra
  photo classes that are neither seen nor unseen classes of the benchmark. It is the embedded
  counterpart of an ImageNet-supervised backbone. Plain DINO from scratch does not give a
  genuine baseline at CPU scale (``docs/embedded_backbone.md`` has the probes).
* The ablation's **oracle** row fine-tunes the starting backbone with the *seen* classes'
  labels for as many steps as AMA trains: the supervised ceiling AMA is compared with.

The model is ``backbone -> linear classifier`` on the CLS embedding; the classifier is thrown
away afterwards. Each step draws ``batch_size`` images uniformly at random (with replacement)
from the labelled lists, applies :func:`amalib.data.transforms.supervised_transform` and takes
one AdamW step on the cross-entropy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, RandomSampler

from amalib.checkpoint_io import load_checkpoint, save_checkpoint
from amalib.config import ensure_generated_data
from amalib.train.interrupt import StopRequest, TrainingDivergedError
from amalib.train.state import seed_everything

__all__ = ["SUPERVISED_KEYS", "train_supervised", "pretrain_supervised", "export_backbone"]

#: The keys of a config's ``pretrain`` section that :func:`train_supervised` reads.
SUPERVISED_KEYS = ("steps", "batch_size", "lr", "weight_decay", "crop_scale", "checkpoint_every")


def _labelled_loader(datasets: Sequence[Dataset], *, steps: int, batch_size: int,
                     num_workers: int, seed: int) -> DataLoader:
    from amalib.data.datasets import collate_skip_broken

    data = datasets[0] if len(datasets) == 1 else ConcatDataset(list(datasets))
    generator = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(data, replacement=True, num_samples=steps * batch_size,
                            generator=generator)
    loader = DataLoader(data, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                        collate_fn=collate_skip_broken, drop_last=True,
                        persistent_workers=False)
    return loader


def train_supervised(
    backbone: nn.Module,
    datasets: Sequence[Dataset],
    n_classes: int,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int = 0,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    extra_state: dict | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Train ``backbone`` with a linear classifier and cross-entropy; returns the loss history.

    Args:
        backbone: Maps ``(n, 3, H, W)`` to ``(n, D)`` (``D = backbone.embed_dim``); trained in
            place.
        datasets: Labelled datasets yielding ``(image, label, index)``
            (:class:`amalib.data.datasets.LabelledImages` with a training transform); labels
            must lie in ``[0, n_classes)``.
        n_classes: Classes of the linear classifier.
        steps: Optimiser steps.
        batch_size: Images per step, drawn uniformly with replacement from all ``datasets``.
        lr: AdamW learning rate (constant).
        weight_decay: AdamW weight decay.
        seed: Seeds the classifier's initialisation and the sampling.
        num_workers: DataLoader workers.
        device: Where to train.
        checkpoint: Where to write a resumable checkpoint (backbone, classifier, optimiser, step,
            RNG, ``extra_state``) every ``checkpoint_every`` steps and at the end; ``None``
            writes nothing.
        checkpoint_every: Steps between checkpoints (0: only at the end).
        resume: Continue from ``checkpoint`` (an error if it does not exist).
        extra_state: Stored in the checkpoint as is (the config, the provenance).
        progress: Show a progress bar.
        log: Line printer.

    Returns:
        One record per logged block: ``{"step", "loss", "accuracy", "time_s"}``, the means over
        the steps since the previous record (the same blocks as the checkpoints, or every
        ``max(1, steps // 10)`` steps when ``checkpoint_every`` is 0).
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    seed_everything(seed)
    dim = int(backbone.embed_dim)
    classifier = nn.Linear(dim, n_classes)
    backbone.to(device).train()
    classifier.to(device).train()
    params = [*backbone.parameters(), *classifier.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    start, history = 0, []
    if resume:
        if checkpoint is None:
            raise ValueError("resume=True needs a checkpoint path")
        state = load_checkpoint(checkpoint, map_location=device)
        if "classifier" not in state or "backbone" not in state:
            raise ValueError(f"{checkpoint} is not a supervised-training checkpoint (it has "
                             f"{sorted(state)[:6]}); resume from the checkpoint.pth that "
                             "`amalib pretrain` wrote with pretrain.objective=supervised")
        backbone.load_state_dict(state["backbone"])
        classifier.load_state_dict(state["classifier"])
        optimizer.load_state_dict(state["optimizer"])
        start, history = int(state["step"]), list(state.get("history", []))
        log(f"resumed from {checkpoint} at step {start} of {steps}")

    def save(step: int) -> None:
        if checkpoint is None:
            return
        save_checkpoint({"backbone": backbone.state_dict(), "classifier": classifier.state_dict(),
                         "optimizer": optimizer.state_dict(), "step": step, "history": history,
                         **(extra_state or {})}, checkpoint)

    if start >= steps:
        backbone.eval()
        return history
    block = checkpoint_every if checkpoint_every > 0 else max(1, steps // 10)
    # Every step draws from the same seeded sampler and the augmentation's random stream: a
    # resumed run replays the batches of the steps already done (without training on them), so
    # it trains on exactly the batches the uninterrupted run would have.
    loader = _labelled_loader(datasets, steps=steps, batch_size=batch_size,
                              num_workers=num_workers, seed=seed)
    bar = tqdm(total=steps, initial=start, desc="supervised", leave=False, disable=not progress)
    t0, loss_sum, correct, seen = time.perf_counter(), 0.0, 0, 0
    with StopRequest() as stop:
        for step, batch in enumerate(loader, start=1):
            if step <= start:
                continue
            if batch is not None:  # None: every image of the batch was unreadable
                images, labels, _ = batch
                images, labels = images.to(device), labels.to(device)
                logits = classifier(backbone(images))
                loss = nn.functional.cross_entropy(logits, labels)
                value = float(loss.detach())
                if not math.isfinite(value):
                    kept = (f"the last checkpoint {checkpoint} is untouched"
                            if checkpoint is not None and Path(checkpoint).exists()
                            else "no checkpoint had been written yet")
                    raise TrainingDivergedError(
                        f"non-finite cross-entropy at step {step}; {kept}. Lower the "
                        "learning rate (pretrain.lr) or check the data.")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += value * len(labels)
                correct += int((logits.argmax(1) == labels).sum())
                seen += len(labels)
            bar.update(1)
            if stop.signal is not None:
                bar.close()
                save(step)
                where = f"; checkpoint written to {checkpoint}" if checkpoint else ""
                raise stop.interrupted(f"stopped after step {step} of {steps}{where}")
            if step % block != 0 and step != steps:
                continue
            record = {"step": step, "loss": loss_sum / max(seen, 1),
                      "accuracy": correct / max(seen, 1),
                      "time_s": round(time.perf_counter() - t0, 1)}
            history.append(record)
            log(f"step {step:>5}/{steps}: cross-entropy {record['loss']:.3f} "
                f"(chance {math.log(n_classes):.2f}), training accuracy "
                f"{record['accuracy']:.3f}, {record['time_s']:.0f} s")
            loss_sum, correct, seen = 0.0, 0, 0
            if checkpoint_every > 0 or step == steps:
                save(step)
    bar.close()
    backbone.eval()
    return history


def pretrain_supervised(config: dict, run_dir: str | Path, *, device: str | None = None,
                        resume: str | Path | None = None, progress: bool = True,
                        log: Callable[[str], None] = print) -> Path:
    """``amalib pretrain`` with ``pretrain.objective: supervised``: the embedded backbone.

    Trains ``model.arch``/``model.stem`` from random weights with cross-entropy on the
    benchmark's pool classes (``data/<root>/pretrain/photo_filelist.txt``, whose classes are
    disjoint from the seen and unseen classes). Writes ``<run_dir>/config.yaml`` and
    ``<run_dir>/checkpoint.pth``; returns the checkpoint's path.
    """
    from amalib.config import ConfigError, save_config, upgrade
    from amalib.data.benchmarks import read_file_list, resolve_benchmark
    from amalib.data.datasets import LabelledImages
    from amalib.data.transforms import supervised_transform
    from amalib.models import create_vit

    config = upgrade(config)  # keys added since the config was written: their defaults
    pcfg, dcfg, mcfg = config["pretrain"], config["data"], config["model"]
    missing = [k for k in SUPERVISED_KEYS if k not in pcfg]
    if missing:
        raise ConfigError(f"pretrain section lacks {missing} (objective: supervised)")
    root = ensure_generated_data(dcfg)
    spec = resolve_benchmark(root, str(config["benchmark"]))
    if spec.pretrain_photos is None:
        raise ConfigError(f"benchmark {spec.name!r} has no pool of pretraining classes")
    pool_list = root / spec.pretrain_photos
    pool_labels = [label for _, label in read_file_list(pool_list)]
    if not pool_labels:
        raise ConfigError(f"{pool_list} lists no images: supervised pretraining needs pool "
                          "classes (data.generate.n_pretrain_classes > 0)")
    n_classes = 1 + max(pool_labels)
    transform = supervised_transform(int(mcfg["img_size"]), scale=tuple(pcfg["crop_scale"]))
    pool = LabelledImages(root / spec.image_root, pool_list, transform, layout=spec.layout(root))
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    checkpoint = run_dir / "checkpoint.pth"
    if resume is not None:
        state = load_checkpoint(resume, expect="pretrain-supervised")
        def fixed(p):  # the settings a resumed run may not change (steps may grow)
            return {k: v for k, v in p.items() if k not in ("steps", "checkpoint_every")}

        old = upgrade(state["config"])  # the stored config as today's code reads it
        if old["model"] != mcfg or fixed(old["pretrain"]) != fixed(pcfg):
            raise ConfigError(f"{resume} was written with other model/pretrain settings than "
                              "this run's; resume with the config it was written with (only "
                              "pretrain.steps and pretrain.checkpoint_every may change)")
        if Path(resume).resolve() != checkpoint.resolve():
            import shutil

            shutil.copyfile(resume, checkpoint)
    seed = int(config["train"]["seed"])
    seed_everything(seed)
    backbone = create_vit(mcfg["arch"], patch_size=mcfg["patch_size"], img_size=mcfg["img_size"],
                          stem=mcfg["stem"])
    log(f"supervised pretraining of {mcfg['arch']}/{mcfg['patch_size']} "
        f"(stem {mcfg['stem']}) on {len(pool)} photos of {n_classes} pool classes "
        f"({pool_list}): {pcfg['steps']} steps of {pcfg['batch_size']}, AdamW lr {pcfg['lr']}")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    provenance = {
        "objective": "supervised",
        "data": "pool classes only (disjoint from the seen and unseen classes)",
        "pool_list": str(spec.pretrain_photos),
        "pool_classes": n_classes,
        "pool_images": len(pool),
        "steps": int(pcfg["steps"]),
        "batch_size": int(pcfg["batch_size"]),
        "arch": f"{mcfg['arch']}/{mcfg['patch_size']}, stem {mcfg['stem']}",
    }
    train_supervised(
        backbone, [pool], n_classes, steps=int(pcfg["steps"]),
        batch_size=int(pcfg["batch_size"]), lr=float(pcfg["lr"]),
        weight_decay=float(pcfg["weight_decay"]), seed=seed,
        num_workers=int(dcfg["num_workers"]), device=dev, checkpoint=checkpoint,
        checkpoint_every=int(pcfg["checkpoint_every"]), resume=resume is not None,
        extra_state={"config": config, "mode": "pretrain-supervised", "provenance": provenance},
        progress=progress, log=log,
    )
    return checkpoint


def export_backbone(checkpoint: str | Path, out: str | Path, *, command: str | None = None,
                    half: bool = True) -> Path:
    """Write a supervised-pretraining checkpoint's backbone as a shippable file.

    The file has DINO's full-checkpoint layout (``teacher`` → ``backbone.*``, no head), so
    :func:`amalib.models.load_dino_weights` and :func:`amalib.models.load_dino_backbone` read it
    as they read DINO's files, plus a ``provenance`` entry (plain strings and numbers: the
    objective, the pool classes, the steps, ``command``) that ``amalib demo`` copies into
    ``summary.json``. ``half`` stores float16 (the shipped asset stays small).
    """
    state = load_checkpoint(checkpoint, expect="pretrain-supervised")
    weights = {}
    for key, value in state["backbone"].items():
        value = value.detach().cpu()
        weights[f"backbone.{key}"] = value.half() if half and value.is_floating_point() else value
    provenance = dict(state["provenance"])
    provenance["steps_done"] = int(state["step"])
    if state.get("history"):
        provenance["final_loss"] = round(float(state["history"][-1]["loss"]), 4)
    if command:
        provenance["command"] = command
    return save_checkpoint({"teacher": weights, "epoch": 0, "provenance": provenance,
                            "kind": "backbone"}, out)
