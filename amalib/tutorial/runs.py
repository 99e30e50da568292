"""Runs of the notebooks: the data and backbone a run starts from, "load the trained run if
present, else train a short one" (notebooks 05 and 06), and a few steps of the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from amalib.tutorial.profiles import Profile

__all__ = ["eval_sets", "find_trained_run", "load_or_train", "load_starting_backbone",
           "train_steps"]


def eval_sets(config: dict) -> dict:
    """The evaluation datasets of a config (generating the mini-benchmark when needed).

    The Trainer's own (:func:`amalib.train.build.build_eval_datasets`).

    Returns:
        :func:`amalib.data.datasets.build_eval_sets` of the config's benchmark:
        ``sketch_test``/``photo_test`` (labelled, unseen classes) with the test transform and
        ``sketch_train``/``photo_train`` (seen classes, training-list order) with the cluster
        transform.
    """
    from amalib.data.benchmarks import resolve_benchmark
    from amalib.train.build import build_eval_datasets
    from amalib.train.trainer import ensure_generated_data

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


def load_or_train(profile: Profile, *, candidates: Sequence[str | Path] | None = None,
                  log=print) -> tuple:
    """The teacher backbone of a trained run: found on disk when present, else trained now.

    Looks, in order, at the notebooks' run ``runs/tutorial/<profile>`` (used only if its saved
    config is the profile's short-run config, so a stale run is retrained) and at the candidates
    (default: the demo's ``runs/demo/train``; used when their benchmark is the profile's). When
    nothing fits, trains the profile's short run into ``runs/tutorial/<profile>`` — the same run
    notebook 05 trains, so notebook 06 shows the same numbers whichever ran first.

    Returns:
        ``(backbone, config, checkpoint_path)``: the teacher backbone in eval mode on
        ``profile.device``, the run's config and the checkpoint it came from.
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
    wanted = profile.short_run_config()
    own = find_trained_run([profile.run_dir])
    if own is not None:
        try:
            state = load_checkpoint(own, expect="ama")
        except CheckpointError as err:
            raise CheckpointError(f"{err} (the notebooks' own run: delete {own.as_posix()} to "
                                  "train it again)") from None
        if state.get("config") == wanted and \
                int(state.get("epoch", -1)) == int(wanted["train"]["epochs"]):
            backbone, cfg = load_trained_backbone(own)
            log(f"loaded the notebooks' run {own.as_posix()} (after {state['epoch']} epochs)")
            return backbone.to(profile.device), cfg, own
        log(f"{own.as_posix()} holds another run; it will be replaced")
    if candidates is None:
        candidates = [Path("runs/demo/train")]
    found = find_trained_run(candidates)
    if found is not None:
        backbone, cfg = load_trained_backbone(found)
        if cfg.get("benchmark") == wanted.get("benchmark"):
            log(f"loaded {found.as_posix()}")
            return backbone.to(profile.device), cfg, found
    log(f"no trained run found: training the short {profile.name} run into "
        f"{profile.run_dir.as_posix()} ...")
    metrics = profile.run_dir / "metrics.jsonl"
    if metrics.exists():
        metrics.unlink()
    trainer = Trainer(wanted, profile.run_dir, device=profile.device, progress=False,
                      log=lambda _line: None)
    trainer.fit()
    checkpoint = profile.run_dir / "checkpoint.pth"
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
