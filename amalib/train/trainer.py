"""The AMA training loop, read like the algorithm box of the paper.

For every epoch::

    if the objective needs prototypes at this epoch:
        extract teacher features of each domain's whole training set -> k-means (per granularity)
    train one epoch: per step, teacher forward on the global crops (no grad), student forward on
        every crop (sketches and photos of one resolution in one backbone call), the scheduled
        loss terms, an optimiser step and an EMA update of the teacher
    evaluate zero-shot retrieval on the unseen classes (teacher backbone, cosine similarity)
    log a summary line and metrics.jsonl, write a checkpoint

Labels are read only by the evaluation; no loss ever sees one. The last epoch is reported — no
model is selected on test data.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from amalib import distributed as du
from amalib.checkpoint_io import load_checkpoint, save_checkpoint
from amalib.config import ConfigError, ensure_generated_data, save_config, upgrade, validate
from amalib.models.student_teacher import ema_update
from amalib.retrieval.features import FeatureSet, extract_features
from amalib.train.build import build_eval_datasets, starting_backbone
from amalib.train.interrupt import StopRequest, TrainingDivergedError
from amalib.train.objective import ObjectiveSchedule
from amalib.train.state import rng_state, seed_everything, set_rng_state
from amalib.train.step import Objective, ama_losses, forward

__all__ = ["Trainer", "read_resume_checkpoint",
           "resolve_pretrained", "train"]

DOMAINS = ("sketch", "photo")
#: ``train.amp`` (amalib.config.AMP_MODES) -> autocast dtype.
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None, "false": None}


def resolve_pretrained(spec: str | None) -> str | None:
    """Turn ``model.pretrained`` into a path (or hub tag); ``None``/``"none"`` means random init.

    ``package:assets/x.pth`` resolves inside the installed amalib; ``hub:<timm tag>`` is passed
    through; anything else is a filesystem path, which must exist.
    """
    if spec is None or str(spec).lower() == "none":
        return None
    spec = str(spec)
    if spec.startswith("hub:"):
        return spec
    if spec.startswith("package:"):
        path = Path(str(resources.files("amalib") / spec[len("package:"):]))
    else:
        path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights not found: {path} (model.pretrained={spec!r}). For the real "
            "benchmarks download the official DINO ViT-B/16 file (dino_vitbase16_pretrain.pth or "
            "dino_vitbase16_pretrain_full_checkpoint.pth from the DINO repository) and pass "
            "--set model.pretrained=/path/to/file; `model.pretrained=none` trains from random "
            "weights on purpose."
        )
    return str(path)


def _build_networks(mcfg: dict, stem: str, pos_interp: str):
    from amalib.models import build_student_teacher

    return build_student_teacher(
        arch=mcfg["arch"],
        patch_size=mcfg["patch_size"],
        img_size=mcfg["img_size"],
        out_dim=mcfg["out_dim"],
        drop_path_rate=mcfg["drop_path_rate"],
        hidden_dim=mcfg["hidden_dim"],
        bottleneck_dim=mcfg["bottleneck_dim"],
        norm_last_layer=mcfg["norm_last_layer"],
        stem=stem,
        pos_embed_interpolation=pos_interp,
    )


def _pretrained_error(path: str, err: Exception) -> Exception:
    """``model.pretrained`` names a file that does not fit: a CheckpointError naming it."""
    from amalib.errors import AmalibError, CheckpointError, one_line

    if isinstance(err, AmalibError):  # already names the file (truncated, another kind, ...)
        return CheckpointError(f"model.pretrained: {err}")
    return CheckpointError(
        f"model.pretrained={path} does not fit model.arch/model.patch_size/model.stem: "
        f"{one_line(str(err))[:400]}; set the model to the file's architecture or pass weights "
        "of this one")


#: Model settings that shape the weights: a checkpoint resumes only into the same ones.
_SHAPE_KEYS = ("arch", "patch_size", "img_size", "stem", "out_dim", "hidden_dim",
               "bottleneck_dim")


def _model_summary(cfg: dict) -> str:
    m = cfg.get("model", {})
    return (f"{m.get('arch')}/{m.get('patch_size')}, out_dim {m.get('out_dim')}, "
            f"benchmark {cfg.get('benchmark')}")


def _config_name(cfg: dict, checkpoint: Path | None = None) -> str:
    """The shipped config whose model and benchmark ``cfg`` has, else the run's config.yaml."""
    from amalib.config import available_configs, load_config

    def same(other: dict) -> bool:
        return all(other["model"].get(k) == cfg["model"].get(k) for k in _SHAPE_KEYS)

    shipped = []
    for name in available_configs():
        try:
            other = load_config(name)
        except ConfigError:  # pragma: no cover - shipped configs load
            continue
        if same(other) and other.get("benchmark") in (cfg.get("benchmark"), None):
            shipped.append((other.get("benchmark") is None, name))
    if shipped:
        return min(shipped)[1]  # the benchmark's own config before a base config
    beside = None if checkpoint is None else Path(checkpoint).parent / "config.yaml"
    return str(beside) if beside is not None and beside.is_file() else "<its config.yaml>"


def read_resume_checkpoint(path, config: dict, mode: str = "ama", *, map_location="cpu") -> dict:
    """Read a checkpoint to resume and check it fits ``config``, before a model is built.

    Raises:
        FileNotFoundError: no such file.
        amalib.errors.CheckpointError: truncated, or not a training checkpoint of ``mode``.
        ConfigError: it was trained with other model shapes, another benchmark or optimiser;
            the message names the config it was trained with and the command that resumes it.
    """
    expect = "ama" if mode == "ama" else "pretrain"
    state = load_checkpoint(path, map_location=map_location, expect=expect)
    # The stored config as today's code reads it (keys added since it was written get the
    # defaults that reproduce it; amalib.config.upgrade), and the same for ``config``.
    old = state["config"] = upgrade(state["config"])
    config = upgrade(config)
    differs = [f"model.{k}" for k in _SHAPE_KEYS
               if old.get("model", {}).get(k) != config["model"].get(k)]
    if old.get("benchmark") != config.get("benchmark"):
        differs.append("benchmark")
    if str(old.get("train", {}).get("optimizer")).lower() != \
            str(config["train"].get("optimizer")).lower():
        differs.append("train.optimizer")
    if differs:
        name = _config_name(old, Path(path))
        command = "pretrain" if mode == "pretrain" else "train"
        raise ConfigError(
            f"{path} was trained with config {name} ({_model_summary(old)}), this run's config "
            f"has {_model_summary(config)} ({', '.join(differs)} differ); resume with "
            f"`amalib {command} --config {name} --resume {path}` or start a new run (another "
            "--out, without --resume)")
    return state


@contextmanager
def frozen_parameters(module: nn.Module) -> Iterator[None]:
    """Inside the block, ``module``'s parameters that require gradients stop requiring them
    (restored on the way out, also after an error).

    A forward pass run inside builds no autograd graph through ``module``, so the backward pass
    stops where ``module`` ends: the head warm-up's frozen backbone costs a forward pass and
    nothing more (:meth:`Trainer.train_step`).
    """
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _param_groups(model: nn.Module, exempt: str = "biases_and_norms") -> list[dict]:
    """Optimiser parameter groups; the first one receives ``train.weight_decay``.

    ``exempt="biases_and_norms"``: no weight decay on biases and norm parameters (DINO's
    ``get_params_groups``, amalib's choice). ``exempt="none"``: one group, everything decayed
    (the release: ``torch.optim.SGD(model.parameters(), weight_decay=1e-4)``).
    """
    if exempt == "none":
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name.endswith(".bias") or p.ndim == 1 else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


class Trainer:
    """AMA (or, with ``mode="pretrain"``, plain DINO on one photo domain) on one config.

    Args:
        config: Resolved config (see ``amalib/configs/mini.yaml``).
        run_dir: Where the config, metrics, figures and checkpoints go (rank 0 writes).
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when available).
        mode: ``"ama"`` (sketches and photos of the seen classes) or ``"pretrain"`` (plain DINO on
            the mini-benchmark's extra photo classes; no clustering, no alignment terms).
        resume: Path of a checkpoint to continue from.
        progress: Show progress bars.
        log: Function that prints one line (rank 0 only).
    """

    #: In the head warm-up of a single-process run, build no autograd graph through the frozen
    #: backbone (:func:`frozen_parameters`). ``False`` computes its gradients and drops them, as
    #: under DDP: the reference the shortcut is tested against, same weights to the bit.
    skip_frozen_backward: bool = True

    def __init__(
        self,
        config: dict,
        run_dir: str | Path,
        *,
        device: str | None = None,
        mode: str = "ama",
        resume: str | Path | None = None,
        progress: bool = True,
        log=print,
    ) -> None:
        if mode not in ("ama", "pretrain"):
            raise ValueError(f"mode must be 'ama' or 'pretrain', got {mode!r}")
        # Keys added since the config was written get the defaults that reproduce such a run;
        # then every setting is checked once, before anything is built (amalib.config).
        self.cfg = config = upgrade(config)
        validate(config, mode=mode)
        self.mode = mode
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.dist = du.init_distributed(device)
        self.device = self.dist.device
        self._log = log
        self.domains = ("photo",) if mode == "pretrain" else DOMAINS
        tcfg = config["train"]
        self.amp_dtype = _AMP_DTYPES[str(tcfg.get("amp")).lower()]  # no key: float32
        # The CPU trains in float32 unless train.cpu_amp asks for bf16 autocast there too.
        self.use_amp = self.amp_dtype is not None and (
            self.device.type == "cuda" or (self.device.type == "cpu" and bool(tcfg["cpu_amp"])
                                           and self.amp_dtype == torch.bfloat16))
        seed = tcfg["seed"]
        # A checkpoint to resume is read and checked against the config before anything is built.
        resume_state = None if resume is None else read_resume_checkpoint(
            resume, config, mode, map_location=self.device)
        seed_everything(seed)
        self.schedule = self._build_schedule()
        self._setup_data()
        self._setup_models()
        self._setup_optimisation()
        self.start_epoch, self.start_step = 0, 0
        # What a mid-epoch checkpoint adds (RNG state, the epoch's clusters), used by fit().
        self._mid_epoch: dict = {}
        self.history: list[dict] = []
        if resume is not None:
            self._resume(resume, resume_state)
        self.clusters: dict[str, list] = {}
        self.prototypes: dict[str, list[torch.Tensor]] = {}

    # ------------------------------------------------------------------ setup
    def log(self, line: str) -> None:
        if du.is_main_process():
            self._log(line)

    def _build_schedule(self) -> ObjectiveSchedule:
        sched = dict(self.cfg["loss"]["schedule"])
        if self.mode == "pretrain":
            sched.update(sd_sketch_weight=0.0, use_cc=False, use_ma=False, use_sg=False)
        return ObjectiveSchedule.from_config(sched)  # checked by amalib.config.validate

    def _setup_data(self) -> None:
        from amalib.data.benchmarks import resolve_benchmark
        from amalib.data.datasets import build_pretrain_set, build_training_sets
        from amalib.data.transforms import MultiCropTransform

        dcfg = self.cfg["data"]  # benchmark, root and crops checked by amalib.config.validate
        root = ensure_generated_data(dcfg)
        self.root = root
        self.spec = resolve_benchmark(root, str(self.cfg["benchmark"]))
        crops = {d: dict(dcfg[f"{d}_crops"]) for d in DOMAINS}
        transforms = {d: MultiCropTransform(domain=d, **crops[d]) for d in DOMAINS}
        self.n_global = crops["photo"]["n_global"]
        if self.mode == "pretrain":
            self.train_sets = {"photo": build_pretrain_set(root, self.spec, transforms["photo"])}
        else:
            sketch_ds, photo_ds = build_training_sets(
                root, self.spec, transforms["sketch"], transforms["photo"]
            )
            self.train_sets = {"sketch": sketch_ds, "photo": photo_ds}
        self.eval_sets = build_eval_datasets(self.cfg, root, self.spec)
        batch = int(dcfg["batch_size"])
        per_epoch = max(len(ds) // (batch * self.dist.world_size) for ds in self.train_sets.values())
        cap = self.cfg["train"]["max_steps_per_epoch"]
        self.steps_per_epoch = min(per_epoch, int(cap)) if cap else per_epoch
        if self.steps_per_epoch < 1:
            raise ConfigError(
                f"data.batch_size={batch} x {self.dist.world_size} processes is larger than the "
                f"training set ({min(len(d) for d in self.train_sets.values())} images)"
            )

    def _setup_models(self) -> None:
        from amalib.models import load_dino_weights

        mcfg = self.cfg["model"]  # arch and the switches checked by amalib.config.validate
        stem = mcfg["stem"]
        # How 96 px local crops resample the position embedding: timm's antialiased bicubic
        # (amalib) or DINO's interpolate_pos_encoding (the release).
        pos_interp = mcfg["pos_embed_interpolation"]
        try:
            student, teacher = _build_networks(mcfg, stem, pos_interp)
        except ValueError as err:
            raise ConfigError(f"the model settings do not fit together: {err}; change them with "
                              "--set model.<key>=...") from None
        self.pretrained = resolve_pretrained(mcfg.get("pretrained"))
        # Which entry of a full DINO checkpoint the student starts from: "teacher" (amalib: both
        # networks from the file's teacher) or "student" (the release: student from `student`,
        # teacher from `teacher`). Files with one backbone load it into both either way.
        init_student_from = mcfg["init_student_from"]
        if self.pretrained is None:
            self.log("model.pretrained is 'none': the backbone starts from RANDOM weights.")
        elif self.pretrained.startswith("hub:"):  # a patch-projection ViT: model.stem is patch
            try:
                backbone = starting_backbone(mcfg, self.pretrained)
            except ValueError as err:
                raise _pretrained_error(self.pretrained, err) from None
            for net in (student, teacher):
                net.backbone.load_state_dict(backbone.state_dict(), strict=True)
            self.log(f"loaded backbone weights from {self.pretrained} (head: random init)")
        else:
            source = "each" if init_student_from == "student" else "teacher"
            try:
                report = load_dino_weights(student, teacher, self.pretrained, source=source)
            except ValueError as err:
                raise _pretrained_error(self.pretrained, err) from None
            head = "with its head" if report.get("head_loaded") else "head: random init"
            which = ("student <- student, teacher <- teacher" if source == "each"
                     else "teacher into both")
            if report.get("kind") != "full":
                which = "one backbone into both"
            self.log(f"loaded {report.get('kind', 'DINO')} weights from {self.pretrained} "
                     f"({which}; {head})")
        self.student = student.to(self.device)
        self.teacher = teacher.to(self.device)
        self.teacher.eval()  # train mode only inside train_step (batch-norm statistics)
        self.student_ddp = self.student
        self.ddp = du.is_distributed()  # the student is wrapped in DDP
        if self.ddp:
            self.student_ddp = nn.parallel.DistributedDataParallel(
                self.student, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if self.cfg["train"]["compile"]:
            self.student_ddp = torch.compile(self.student_ddp)

    def _setup_optimisation(self) -> None:
        from amalib.losses.cluster_contrast import ClusterContrastLoss
        from amalib.losses.dino import DINOLoss
        from amalib.losses.mutual_alignment import MutualAlignmentLoss
        from amalib.losses.similarity_guidance import SimilarityGuidanceLoss
        from amalib.models import cosine_schedule

        tcfg, lcfg = self.cfg["train"], self.cfg["loss"]
        epochs = int(tcfg["epochs"])
        self.epochs = epochs
        dcfg = dict(lcfg["dino"])
        # One DINO centre per domain (amalib) or one shared by both (the release: one DINOLoss,
        # called on the sketches and then on the photos, each call updating the centre).
        center = dcfg.pop("center")

        def dino_loss() -> DINOLoss:
            return DINOLoss(self.cfg["model"]["out_dim"], n_epochs=max(epochs, 1),
                            n_global=self.n_global, **dcfg)

        shared = dino_loss() if center == "shared" else None
        # compute_losses calls them in DOMAINS order (sketch, then photo), as the release does.
        self.dino_losses = nn.ModuleDict({
            d: shared if shared is not None else dino_loss() for d in self.domains
        }).to(self.device)
        ccfg = lcfg["cluster"]
        self.cluster_space = ccfg["space"]
        self.cc_loss = ClusterContrastLoss(
            temperature=ccfg["temperature"],
            prototype_temperature=ccfg["prototype_temperature"],
            confidence_threshold=ccfg["confidence_threshold"],
        )
        macfg = dict(lcfg["mutual_alignment"])
        self.ma_crops = macfg.pop("crops")  # which student rows L_MA uses
        self.ma_loss = MutualAlignmentLoss(**macfg)
        self.sg_loss = SimilarityGuidanceLoss(**lcfg["similarity_guidance"])
        # What amalib.train.step.ama_losses needs: the loss modules above and their schedule.
        self.objective = Objective(self.schedule, self.dino_losses, self.cc_loss, self.ma_loss,
                                   self.sg_loss, self.ma_crops)

        global_batch = self.cfg["data"]["batch_size"] * self.dist.world_size
        lr = tcfg["lr"] * global_batch / 32
        kind = tcfg["optimizer"].lower()
        exempt, decay_every = tcfg["weight_decay_exempt"], tcfg["lr_decay_every"]
        groups = _param_groups(self.student, exempt)
        fused = {"fused": True} if self.device.type == "cuda" else {}
        if kind == "sgd":
            self.optimizer = torch.optim.SGD(groups, lr=lr, momentum=tcfg["momentum"],
                                             weight_decay=tcfg["weight_decay"], **fused)
        else:  # adamw (amalib.config.validate allows no other)
            self.optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=tcfg["weight_decay"],
                                               **fused)
        steps = self.steps_per_epoch
        warmup = min(tcfg["warmup_epochs"], epochs)
        if decay_every == "epoch":
            # The release's adjust_learning_rate: one value per epoch, lr * 0.5 * (1 + cos(pi *
            # epoch / epochs)) (with min_lr 0), held for every step of the epoch.
            self.lr_schedule = np.repeat(
                cosine_schedule(lr, tcfg["min_lr"], epochs, 1, warmup_epochs=warmup), steps)
        else:
            self.lr_schedule = cosine_schedule(lr, tcfg["min_lr"], epochs, steps,
                                               warmup_epochs=warmup)
        self.momentum_schedule = cosine_schedule(
            tcfg["teacher_momentum"], tcfg["teacher_momentum_final"], epochs, steps
        )
        self.scaler = torch.amp.GradScaler(
            enabled=self.use_amp and self.amp_dtype == torch.float16
        )

    # ------------------------------------------------------------------ state
    def state_dict(self, epoch: int, step: int) -> dict:
        return {
            "student": self.student.state_dict(),
            "teacher": self.teacher.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "dino_loss": {d: loss.state_dict() for d, loss in self.dino_losses.items()},
            "epoch": epoch,
            "step": step,
            "mode": self.mode,
            "world_size": self.dist.world_size,
            "rng": rng_state(),
            "config": self.cfg,
            "history": self.history,
            # The epoch's k-means (a mid-epoch resume must not re-cluster with a moved teacher).
            "clusters": {d: [dataclasses.asdict(r) for r in results]
                         for d, results in self.clusters.items()},
        }

    def resume(self, path: str | Path, state: dict | None = None) -> None:
        """Continue from checkpoint ``path`` (what ``resume=`` does at construction); the demo
        calls it after evaluating the starting backbone. ``state``: the checkpoint already read
        with :func:`read_resume_checkpoint`."""
        self._resume(path, state)

    def _resume(self, path: str | Path, state: dict | None = None) -> None:
        if state is None:
            state = read_resume_checkpoint(path, self.cfg, self.mode, map_location=self.device)
        try:
            self.student.load_state_dict(state["student"])
            self.teacher.load_state_dict(state["teacher"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scaler.load_state_dict(state["scaler"])
            for d, loss in self.dino_losses.items():
                loss.load_state_dict(state["dino_loss"][d])
            self.start_epoch, self.start_step = int(state["epoch"]), int(state["step"])
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            from amalib.errors import CheckpointError, one_line

            what = f"no {err.args[0]!r} entry" if isinstance(err, KeyError) else \
                one_line(str(err))[:300]
            raise CheckpointError(
                f"{path} does not hold a complete training state of this config ({what}); it "
                "was changed after `amalib train` wrote it: resume from an intact checkpoint or "
                "start a new run") from None
        self.history = list(state.get("history", []))
        if self.start_step > 0:
            self._mid_epoch = {"rng": state.get("rng"), "clusters": state.get("clusters")}
            if du.is_distributed():
                self.log("note: a mid-epoch resume under DDP restores rank 0's RNG state only; "
                         "the other ranks do not continue their exact random streams")
        self.log(f"resumed from {path} at epoch {self.start_epoch}, step {self.start_step}")

    def _save(self, epoch: int, step: int, name: str = "checkpoint.pth") -> None:
        du.run_on_main_process(self._write_checkpoint, epoch, step, name)

    def _write_checkpoint(self, epoch: int, step: int, name: str) -> None:
        save_checkpoint(self.state_dict(epoch, step), self.run_dir / name)

    # ------------------------------------------------------------------ pieces
    def _loader(self, domain: str, epoch: int, cycle: int = 0) -> DataLoader:
        from amalib.data.transforms import collate_multicrop

        ds = self.train_sets[domain]
        seed = int(self.cfg["train"]["seed"]) * 1000 + epoch * 10 + cycle
        gen = torch.Generator().manual_seed(seed + (0 if domain == "sketch" else 500_000))
        if du.is_distributed():
            sampler = torch.utils.data.distributed.DistributedSampler(
                ds, shuffle=True, seed=seed, drop_last=True)
            sampler.set_epoch(epoch)
        else:
            sampler = torch.utils.data.RandomSampler(ds, generator=gen)
        workers = int(self.cfg["data"]["num_workers"])
        return DataLoader(
            ds, batch_size=self.cfg["data"]["batch_size"], sampler=sampler, drop_last=True,
            num_workers=workers, collate_fn=collate_multicrop, generator=gen,
            pin_memory=self.device.type == "cuda",
        )

    def batches(self, epoch: int, rng_at: tuple[int, dict] | None = None):
        """The training batches of ``epoch``: yield ``{domain: (crops, indices)}``, one per step.

        ``crops`` is the crop-major list of multi-crop views (global crops first, each
        ``(B, 3, H, W)``), ``indices`` the ``(B,)`` positions of the images in the domain's
        training list (they look up cluster assignments; no label is ever loaded). Sketches and
        photos are drawn independently; the shorter domain's loader is cycled.

        ``rng_at=(step, state)`` restores the RNG state just before batch ``step`` is loaded:
        a resumed run loads (and fit skips) the batches before it, then continues with the
        random stream of the interrupted run.
        """
        iters = {d: iter(self._loader(d, epoch)) for d in self.domains}
        cycles = dict.fromkeys(self.domains, 0)
        for step in range(self.steps_per_epoch):
            if rng_at is not None and step == rng_at[0]:
                set_rng_state(rng_at[1])
            batch = {}
            for d in self.domains:
                try:
                    batch[d] = next(iters[d])
                except StopIteration:
                    cycles[d] += 1
                    iters[d] = iter(self._loader(d, epoch, cycles[d]))
                    batch[d] = next(iters[d])
            yield batch

    def extract(self, split: str, *, normalize: bool = True) -> FeatureSet:
        """Teacher-backbone features of one split (``sketch_test``, ``photo_train``, …),
        L2-normalised unless ``normalize=False`` (raw CLS features)."""
        du.average_buffers(self.teacher)  # one set of batch-norm statistics on every rank
        return extract_features(
            self.teacher.backbone, self.eval_sets[split],
            batch_size=self.cfg["data"]["eval_batch_size"], device=self.device,
            num_workers=int(self.cfg["data"]["num_workers"]),
            amp_dtype=self.amp_dtype, desc=split, progress=self.progress, normalize=normalize,
        )

    def cluster(self, epoch: int) -> None:
        """k-means of each domain's teacher features at every granularity (rank 0, broadcast)."""
        from amalib.clustering import cluster_features

        ccfg = self.cfg["loss"]["cluster"]
        raw = self.cluster_space == "raw_euclidean"  # the release: k-means of raw CLS features
        for d in self.domains:
            feats = self.extract(f"{d}_train", normalize=not raw)
            results = None
            if du.is_main_process():
                t0 = time.perf_counter()
                results = cluster_features(
                    feats.features[feats.valid], ccfg["granularities"], n_iter=ccfg["n_iter"],
                    n_redo=ccfg["n_redo"], max_points_per_centroid=ccfg["max_points_per_centroid"],
                    seed=int(self.cfg["train"]["seed"]) + epoch, space=self.cluster_space,
                )
                # Assignments indexed by dataset position; unreadable images get -1.
                for r in results:
                    full = torch.full((len(feats),), -1, dtype=torch.long)
                    full[feats.valid] = r.assignments
                    r.assignments = full
                self.log(f"  k-means {d}: K={[r.n_clusters for r in results]} "
                         f"({time.perf_counter() - t0:.1f} s)")
            self.set_clusters(d, du.broadcast_object(results))

    def set_clusters(self, domain: str, results: list) -> None:
        """Use ``results`` (one :class:`~amalib.clustering.ClusterResult` per granularity, with
        assignments indexed by training-set position) as ``domain``'s clusters from now on."""
        self.clusters[domain] = results
        # Device copies once per clustering, not once per granularity and step.
        self.prototypes[domain] = [r.centroids.to(self.device) for r in results]

    def evaluate(self) -> dict:
        """Zero-shot retrieval of unseen-class sketches against unseen-class photos."""
        from amalib.metrics import evaluate_retrieval

        q, g = self.extract("sketch_test"), self.extract("photo_test")
        return evaluate_retrieval(
            q.features[q.valid], q.labels[q.valid], g.features[g.valid], g.labels[g.valid],
            ap=self.cfg["eval"]["ap"],
        )

    def compute_losses(self, batch: dict, epoch: int):
        """One batch through the networks and AMA's objective: ``(terms, total, stats)``.

        :func:`amalib.train.step.forward` runs the student on every crop and the teacher on the
        global crops (both domains of one resolution in one backbone call, under autocast on
        GPUs); :func:`amalib.train.step.ama_losses` turns the outputs into the loss terms.
        """
        crops = {d: [c.to(self.device, non_blocking=True) for c in batch[d][0]]
                 for d in self.domains}
        amp = torch.autocast(self.device.type, dtype=self.amp_dtype) if self.use_amp else None
        student, teacher = forward(self.student_ddp, self.teacher, crops, self.n_global,
                                   autocast=amp)
        return ama_losses(student, teacher, {d: batch[d][1] for d in self.domains}, epoch=epoch,
                          objective=self.objective, clusters=self.clusters,
                          prototypes=self.prototypes)

    def train_step(self, batch: dict, epoch: int, global_step: int):
        """One optimiser step: ``({"total": ..., <term>: ...}, stats)``, detached.

        The schedules set the learning rate and weight decay, the loss terms come from
        :meth:`compute_losses`, then backward (scaled for float16), the head warm-up's frozen
        backbone, clipping, the optimiser step and the teacher's EMA.
        """
        for i, group in enumerate(self.optimizer.param_groups):
            group["lr"] = float(self.lr_schedule[global_step])
            if i == 0:
                group["weight_decay"] = self.cfg["train"]["weight_decay"]
        # As in DINO, the teacher's forward in a training step runs in train mode: its batch norm
        # (stem="cnn" or a batch-norm head) normalises each batch with the batch's statistics.
        # It has no dropout or drop-path, so nothing else changes. Its running statistics are
        # then replaced by the student's (ema_update copies buffers), which its own train-mode
        # forward of every crop has moved (see evaluate.adapt_batch_norm). Feature extraction and
        # everything outside the step see the teacher in eval mode. Under DDP each rank uses its
        # own batch's statistics: DINO converts batch norm to SyncBatchNorm, amalib does not (yet).
        # Head warm-up: the student's backbone keeps its starting weights (no gradient, so no
        # step and no weight decay) while the randomly initialised DINO head learns to read it,
        # so the head's first, arbitrary gradients never reach the pretrained features
        # (linear-probe-then-fine-tune, Kumar et al., ICLR 2022). In one process the backbone
        # runs frozen, so backward stops at the head: the demo's epoch 0 takes half the time,
        # with the same weights to the bit on the CPU (tested; a GPU or torch.compile may pick
        # other kernels for a graph without the backbone's backward). Under DDP every parameter
        # must get a gradient each step (the reducer waits for all of them), so there the
        # backbone's gradients are computed, then dropped.
        warm_up = epoch < int(self.cfg["train"]["freeze_backbone_epochs"])
        skip_backbone = warm_up and self.skip_frozen_backward and not self.ddp
        self.teacher.train()
        try:
            with frozen_parameters(self.student.backbone) if skip_backbone else nullcontext():
                losses, total, stats = self.compute_losses(batch, epoch)
        finally:
            self.teacher.eval()
        self.optimizer.zero_grad(set_to_none=True)
        if total.requires_grad:  # not so when a warm-up's only terms read the frozen backbone
            self.scaler.scale(total).backward()
        if warm_up:
            for p in self.student.backbone.parameters():
                p.grad = None
        clip = self.cfg["train"]["clip_grad"]
        if clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.student.parameters(), clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        ema_update(self.student, self.teacher, float(self.momentum_schedule[global_step]))
        return {"total": total.detach(), **{k: v.detach() for k, v in losses.items()}}, stats

    # ------------------------------------------------------------------ loop
    def train_one_epoch(self, epoch: int, stop: StopRequest | None = None) -> dict:
        """Train one epoch (from ``start_step`` when it is the resumed one); its record.

        k-means first when the objective needs prototypes at ``epoch``, then every step, then
        the evaluation on the unseen classes every ``eval.every`` epochs and at the last. The
        record (epoch means of the loss terms and of the filter statistics, learning rate,
        weights, evaluation) is what ``metrics.jsonl`` gets.

        Raises:
            TrainingInterrupted: ``stop`` saw SIGINT/SIGTERM; the step finished and the
                checkpoint was written first.
            TrainingDivergedError: a non-finite loss.
        """
        from tqdm.auto import tqdm

        t_epoch = time.perf_counter()
        replaced_before = {d: self._n_replaced(d) for d in self.domains}
        seed_everything(int(self.cfg["train"]["seed"]) * 1000 + epoch + 7919 * du.rank())
        mid_epoch = self._mid_epoch if epoch == self.start_epoch else {}
        if self.mode == "ama" and self.schedule.needs_clustering(epoch):
            if mid_epoch.get("clusters"):
                from amalib.clustering import ClusterResult

                for d, results in mid_epoch["clusters"].items():
                    self.set_clusters(d, [ClusterResult(**r) for r in results])
            else:
                self.cluster(epoch)
        self.student.train()
        sums: dict[str, torch.Tensor] = {}
        stat_sums: dict[str, torch.Tensor] = {}
        stat_counts: dict[str, int] = {}
        skip = self.start_step if epoch == self.start_epoch else 0
        bar = tqdm(total=self.steps_per_epoch, initial=skip, desc=f"epoch {epoch}",
                   leave=False, disable=not (self.progress and du.is_main_process()))
        log_every = int(self.cfg["train"]["log_every"])
        check_every = 1 if self.device.type == "cpu" else log_every
        n_steps = 0
        rng_at = (skip, mid_epoch["rng"]) if mid_epoch.get("rng") else None
        for step, batch in enumerate(self.batches(epoch, rng_at)):
            if step < skip:
                continue
            global_step = epoch * self.steps_per_epoch + step
            out, stats = self.train_step(batch, epoch, global_step)
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + v
            # Epoch means of the step statistics (cc_kept_*), over the steps that had them.
            for k, v in stats.items():
                stat_sums[k] = stat_sums.get(k, 0.0) + v
                stat_counts[k] = stat_counts.get(k, 0) + 1
            n_steps += 1
            if (step + 1) % check_every == 0 and not torch.isfinite(out["total"]):
                self._diverged(epoch, step, out)
            if (step + 1) % log_every == 0:
                bar.set_postfix(loss=f"{float(out['total']):.4f}")
            bar.update(1)
            if stop is not None and stop.signal is not None:
                bar.close()
                self._save(epoch, step + 1)
                raise stop.interrupted(
                    f"stopped after step {step + 1} of epoch {epoch}; checkpoint written to "
                    f"{self.run_dir / 'checkpoint.pth'}. Resume with --resume "
                    f"{self.run_dir / 'checkpoint.pth'}")
        bar.close()
        means = {k: float(v) / max(n_steps, 1) for k, v in sums.items()}
        if not math.isfinite(means.get("total", 0.0)):
            self._diverged(epoch, self.steps_per_epoch - 1, {"total": means["total"]})
        record = {"epoch": epoch, "time_s": round(time.perf_counter() - t_epoch, 2),
                  "lr": float(self.lr_schedule[min((epoch + 1) * self.steps_per_epoch - 1,
                                                  len(self.lr_schedule) - 1)]),
                  "weights": self.schedule.weights(epoch),
                  "loss": means,
                  **{k: float(v) / stat_counts[k] for k, v in stat_sums.items()}}
        replaced = {d: self._n_replaced(d) - replaced_before[d] for d in self.domains}
        if any(replaced.values()):
            record["replaced_unreadable"] = replaced
            self.log("  replaced unreadable training images by readable ones of the same "
                     "domain: " + ", ".join(f"{d} {n}" for d, n in replaced.items()) +
                     " (this process; the warnings name the files)")
        every = int(self.cfg["eval"]["every"])
        if self.mode == "ama" and ((epoch + 1) % every == 0 or epoch == self.epochs - 1):
            record["eval"] = self.evaluate()
        return record

    def fit(self, keep_after: Sequence[int] = ()) -> list[dict]:
        """Train from ``start_epoch`` to ``train.epochs``; returns the per-epoch history.

        Each epoch's record goes to the log and ``metrics.jsonl`` (draw it with
        :func:`amalib.viz.curves.plot_training_curves`); a checkpoint follows every
        ``train.checkpoint_every`` epochs and the last.

        Args:
            keep_after: Epoch counts ``n`` after which the training state is also kept as
                ``checkpoint_epoch{n}.pth`` (``checkpoint.pth`` is overwritten): another run
                that trains its first ``n`` epochs identically resumes from it (the ablation's
                rows, which differ only in when terms switch on, share their first epochs).

        Raises:
            TrainingInterrupted: SIGINT/SIGTERM; the current step finished and a checkpoint
                was written (the message names it and the resume flag).
        """
        if du.is_main_process():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.cfg, self.run_dir / "config.yaml")
        self.log(f"run directory: {self.run_dir}")
        self.log(f"{self.mode}: {self.epochs} epochs x {self.steps_per_epoch} steps, batch "
                 f"{self.cfg['data']['batch_size']} per domain x {self.dist.world_size} "
                 f"process(es) on {self.device}; training sets: "
                 + ", ".join(f"{d} {len(ds)}" for d, ds in self.train_sets.items()))
        self.log("objective schedule:\n" + self.schedule.table(
            self.schedule.default_table_epochs(self.epochs)))
        with StopRequest() as stop:
            for epoch in range(self.start_epoch, self.epochs):
                record = self.train_one_epoch(epoch, stop)
                self.history.append(record)
                self._log_epoch(record)
                if (epoch + 1) % int(self.cfg["train"]["checkpoint_every"]) == 0 or \
                        epoch == self.epochs - 1:
                    self._save(epoch + 1, 0)
                if epoch + 1 in keep_after:
                    self._save(epoch + 1, 0, f"checkpoint_epoch{epoch + 1}.pth")
            if stop.signal is not None:
                # During the last epoch's evaluation: training is complete, but the caller was
                # asked to stop and must not carry on as if nothing happened.
                raise stop.interrupted(f"training finished; checkpoint written to "
                                       f"{self.run_dir / 'checkpoint.pth'}")
        return self.history

    def _n_replaced(self, domain: str) -> int:
        return getattr(self.train_sets[domain], "n_replaced", 0)

    def _diverged(self, epoch: int, step: int, out: dict) -> None:
        values = ", ".join(f"{k}={float(v):.4g}" for k, v in out.items())
        ckpt = self.run_dir / "checkpoint.pth"
        kept = f"the last good checkpoint {ckpt} is untouched" if ckpt.exists() else \
            "no checkpoint had been written yet"
        raise TrainingDivergedError(
            f"non-finite loss at epoch {epoch}, step {step} ({values}); {kept}. Lower train.lr, "
            "check the data, or resume from the checkpoint."
        )

    def _log_epoch(self, record: dict) -> None:
        losses = " ".join(f"{k}={v:.4f}" for k, v in record["loss"].items())
        line = f"epoch {record['epoch']:>3} | {losses} | {record['time_s']:.0f} s"
        if "eval" in record:
            e = record["eval"]
            line += (f" | mAP@all {e['mAP@all']:.4f} mAP@200 {e['mAP@200']:.4f} "
                     f"P@100 {e['P@100']:.4f} P@200 {e['P@200']:.4f}")
        self.log(line)
        if du.is_main_process():
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")


def train(config: dict, run_dir: str | Path, **kwargs) -> Trainer:
    """Build a :class:`Trainer`, run it and return it (history in ``trainer.history``)."""
    trainer = Trainer(config, run_dir, **kwargs)
    trainer.fit()
    return trainer

