"""Runs of the notebooks: the data and backbone a run starts from, "load a trained model (the
notebooks' own full run, the demo's, or the one that ships with amalib), or train one"
(notebooks 05 and 06), and a few steps of the engine.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from amalib.tutorial.profiles import Profile

__all__ = ["MODEL_VARIABLE", "SHIPPED_MODEL", "eval_sets", "find_trained_run", "load_or_train",
           "load_starting_backbone", "shipped_model_info", "train_steps"]

#: Environment variable naming the trained model ``load_or_train`` returns (a checkpoint, or a
#: shipped model's name such as ``ama_mini``) instead of searching ``runs/``. ``make test`` sets
#: ``AMALIB_MODEL=ama_mini``: the committed outputs of notebook 06 are the shipped model's, and
#: a ``runs/demo`` left by ``make demo`` must not change what nbval compares them with.
MODEL_VARIABLE = "AMALIB_MODEL"


def eval_sets(config: dict) -> dict:
    """The evaluation datasets of a config (generating the mini-benchmark when needed).

    The Trainer's own (:func:`amalib.train.build.build_eval_datasets`).

    Returns:
        :func:`amalib.data.datasets.build_eval_sets` of the config's benchmark:
        ``sketch_test``/``photo_test`` (labelled, unseen classes) with the test transform and
        ``sketch_train``/``photo_train`` (seen classes, training-list order) with the cluster
        transform.
    """
    from amalib.config import ensure_generated_data
    from amalib.data.benchmarks import resolve_benchmark
    from amalib.train.build import build_eval_datasets

    root = ensure_generated_data(config["data"])
    spec = resolve_benchmark(root, str(config["benchmark"]))
    return build_eval_datasets(config, root, spec)


def load_starting_backbone(config: dict, *, seed: int = 0, device: str = "cpu"):
    """The backbone AMA starts from: the DINO weights named by ``model.pretrained``.

    ``model.pretrained: none`` gives a randomly initialised ViT (seeded) — on purpose only.
    Read as the Trainer reads it (:func:`amalib.train.build.starting_backbone`).

    Returns:
        A timm ViT in eval mode on ``device`` mapping ``(B, 3, H, W)`` to ``(B, D)`` CLS
        features.
    """
    from amalib.train.build import starting_backbone
    from amalib.train.trainer import resolve_pretrained

    mcfg = config["model"]
    backbone = starting_backbone(mcfg, resolve_pretrained(mcfg.get("pretrained")), seed=seed)
    return backbone.to(device).eval()


def find_trained_run(candidates: Sequence[str | Path]) -> Path | None:
    """The first ``checkpoint.pth`` found among run directories (or checkpoint files)."""
    for candidate in candidates:
        path = Path(candidate)
        checkpoint = path if path.suffix == ".pth" else path / "checkpoint.pth"
        if checkpoint.is_file():
            return checkpoint
    return None


#: The trained model that ships with amalib and the benchmark it was trained on.
SHIPPED_MODEL = "ama_mini"


def shipped_model_info(name: str = SHIPPED_MODEL) -> dict:
    """What a shipped model's file records besides its weights.

    Returns:
        ``{"provenance", "metrics", "config", "epoch"}``: how the run was made (command,
        config name, seed, torch threads, before/after metrics, …), its ``metrics.jsonl``
        records (one per epoch, as :func:`amalib.viz.curves.plot_training_curves` reads them),
        its resolved config and its number of epochs.
    """
    from amalib.checkpoint_io import load_checkpoint

    state = load_checkpoint(name, expect="ama-model")
    return {key: state[key] for key in ("provenance", "metrics", "config", "epoch")}


def _fits(config: dict, wanted: dict) -> bool:
    """Whether a trained run's config is on the wanted config's benchmark with its model."""
    model = ("arch", "patch_size", "img_size", "stem")
    return (config.get("benchmark") == wanted.get("benchmark")
            and config["data"].get("generate") == wanted["data"].get("generate")
            and all(config["model"].get(k) == wanted["model"].get(k) for k in model))


def load_or_train(profile: Profile, *, train: bool = False,
                  candidates: Sequence[str | Path] | None = None, log=print) -> tuple:
    """A trained teacher backbone for the profile: found on disk or shipped, else trained now.

    Looks, in order, for

    1. the notebooks' own full run, ``runs/tutorial/<profile>-full`` (or notebook 05's run
       ``runs/tutorial/<profile>`` where that is the full run, as on ``gpu-mini``), used only
       when its saved config is :meth:`Profile.full_run_config` and it finished;
    2. the candidates (default: ``runs/demo/train``, what ``make demo`` writes) on the
       profile's benchmark;
    3. the model that ships with amalib (``ama_mini``: the teacher of ``amalib demo --seed 0``)
       on the mini-benchmark.

    ``AMALIB_MODEL`` in the environment replaces the search (not ``train=True``): the model it
    names is returned, or an error says why it cannot serve the profile.

    With ``train=True`` (the notebooks' ``TRAIN = True``), or when nothing fits (``gpu-real``),
    it trains the profile's full run into ``runs/tutorial/<profile>-full`` instead: on the
    mini-benchmark the ``mini`` preset (about 6 minutes on two idle CPU cores), on ``gpu-real`` the
    compressed release recipe. It says which one it loaded (``log``).

    Returns:
        ``(backbone, config, checkpoint)``: the teacher backbone in eval mode on
        ``profile.device``, the run's config and the checkpoint it came from (a path, or the
        shipped model's name, which every command and loader accepts as a checkpoint).
    """
    from amalib.checkpoint_io import load_checkpoint
    from amalib.config import ConfigError
    from amalib.errors import CheckpointError
    from amalib.retrieval.evaluate import load_trained_backbone
    from amalib.train.trainer import Trainer

    if not isinstance(profile, Profile):
        raise ConfigError(f"load_or_train needs the Profile that select_profile(...) returns, got "
                          f"{profile!r}")
    if isinstance(candidates, (str, Path)):  # one run directory or checkpoint
        candidates = [candidates]
    wanted = profile.full_run_config()
    forced = os.environ.get(MODEL_VARIABLE, "").strip()
    if forced and not train:
        from amalib.checkpoint_io import names_package_file

        # A shipped name stays a name (what the notebooks compare with SHIPPED_MODEL); anything
        # else is a path, relative to the work folder the notebooks run in (setup_notebook).
        checkpoint = forced if names_package_file(forced) else Path(forced).expanduser()
        try:
            backbone, cfg = load_trained_backbone(checkpoint)
        except (FileNotFoundError, CheckpointError) as err:
            raise type(err)(f"{err} (named by {MODEL_VARIABLE}; unset it to search runs/)") \
                from None
        if not _fits(cfg, wanted):
            raise ConfigError(f"{MODEL_VARIABLE}={forced} was trained on the {cfg.get('benchmark')} "
                              f"benchmark with another model or data than profile {profile.name} "
                              f"uses; unset {MODEL_VARIABLE} or name a run of this profile")
        log(f"loaded {forced} ({MODEL_VARIABLE} names it; runs/ was not searched)")
        return backbone.to(profile.device), cfg, checkpoint
    if not train:
        for own in dict.fromkeys([profile.full_run_dir, profile.run_dir]):
            found = find_trained_run([own])
            if found is None:
                continue
            try:
                state = load_checkpoint(found, expect="ama")
            except CheckpointError as err:
                raise CheckpointError(f"{err} (the notebooks' own run: delete "
                                      f"{found.as_posix()} to train it again)") from None
            if state.get("config") == wanted and \
                    int(state.get("epoch", -1)) == int(wanted["train"]["epochs"]):
                backbone, cfg = load_trained_backbone(found)
                log(f"loaded the notebooks' full run {found.as_posix()} (after {state['epoch']} "
                    "epochs)")
                return backbone.to(profile.device), cfg, found
            if own == profile.full_run_dir:
                log(f"not using {found.as_posix()}: its config or epoch count is not the profile's "
                    "full run now (TRAIN = True trains it again)")
        found = find_trained_run(candidates if candidates is not None
                                 else [Path("runs/demo/train")])
        if found is not None:
            backbone, cfg = load_trained_backbone(found)
            if _fits(cfg, wanted):
                log(f"loaded {found.as_posix()}")
                return backbone.to(profile.device), cfg, found
        info = shipped_model_info(SHIPPED_MODEL)
        if _fits(info["config"], wanted):
            backbone, cfg = load_trained_backbone(SHIPPED_MODEL)
            prov = info["provenance"]
            log(f"loaded the model that ships with amalib, {SHIPPED_MODEL}: the teacher of "
                f"`{prov['command']}` ({prov['config_name']} preset, {prov['epochs']} epochs; "
                f"mAP@all {prov['before']['mAP@all']:.3f} -> {prov['after']['mAP@all']:.3f}). "
                "TRAIN = True trains your own.")
            return backbone.to(profile.device), cfg, SHIPPED_MODEL
        log(f"no trained run found for {profile.name}")
    run_dir = profile.full_run_dir
    t = wanted["train"]
    log(f"training the full {profile.name} run ({t['epochs']} epochs"
        + (f" of at most {t['max_steps_per_epoch']} steps" if t.get("max_steps_per_epoch")
           else "") + f") into {run_dir.as_posix()} ...")
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        metrics.unlink()
    trainer = Trainer(wanted, run_dir, device=profile.device, progress=False,
                      log=lambda _line: None)
    trainer.fit()
    checkpoint = run_dir / "checkpoint.pth"
    backbone, cfg = load_trained_backbone(checkpoint)
    return backbone.to(profile.device), cfg, checkpoint


def train_steps(trainer, n_steps: int, epoch: int = 0) -> list[dict[str, float]]:
    """Run ``n_steps`` optimisation steps of a :class:`~amalib.train.Trainer` at ``epoch``.

    The notebook-sized counterpart of ``Trainer.fit``: same batches, same step (teacher and
    student forward, scheduled losses, optimiser step, EMA update), no evaluation, no checkpoint.
    Terms that need prototypes (CC, MA) need ``trainer.cluster(epoch)`` first.

    Returns:
        One dict of float losses (``total``, ``sd_sketch``, ``sd_photo``, …) per step.
    """
    trainer.student.train()
    history = []
    for step, batch in enumerate(trainer.batches(epoch)):  # public: the engine's own batches
        if step >= n_steps:
            break
        out, _ = trainer.train_step(batch, epoch, epoch * trainer.steps_per_epoch + step)
        history.append({k: float(v) for k, v in out.items()})
    return history
