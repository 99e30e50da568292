"""The main job: embedded benchmark → shipped starting backbone → AMA → zero-shot evaluation.

``amalib demo`` (and ``make demo``) runs :func:`run_demo`: it generates the mini-benchmark if
needed, evaluates the starting backbone (a small hybrid ViT trained with cross-entropy on the
benchmark's *pool* classes, which are neither seen nor unseen classes: the embedded counterpart
of an ImageNet-pretrained backbone), trains AMA on the unlabelled seen classes, evaluates again,
and writes a run directory with ``summary.json`` (metrics before and after, the starting
backbone's provenance, the health of each loss term, wall time and peak memory), a retrieval
grid, a UMAP of sketch and photo embeddings before and after, and the training curves.

SIGINT or SIGTERM stops the demo at once: during training after the current step (with a
checkpoint, ``<out>/train/checkpoint.pth``), anywhere else immediately. :func:`run_demo` then
raises :class:`~amalib.train.trainer.TrainingInterrupted` carrying the command that resumes it,
the CLI exits with status 130 (SIGINT) or 143 (SIGTERM), and no ``summary.json`` is written (a
previous one in ``<out>`` is removed when the demo starts), so an interrupted run never reads as
a result. ``amalib demo --resume <out>/train/checkpoint.pth`` evaluates the starting backbone
again, continues training from the checkpoint and writes the summary of the whole run.
"""

from __future__ import annotations

import json
import resource
import shlex
import signal
import time
from contextlib import contextmanager
from pathlib import Path

from amalib.metrics import METRIC_KEYS, chance_levels, evaluate_retrieval

__all__ = ["run_demo", "format_comparison", "describe_starting_backbone", "term_health"]


def format_comparison(before: dict, after: dict, chance: dict | None = None) -> str:
    """A small text table of the metrics before and after AMA, with the ratio, and each metric's
    chance level (:func:`amalib.metrics.chance_levels`) when given."""
    head = f"{'metric':<9} {'before':>8} {'after':>8} {'ratio':>7}"
    lines = [head + (f" {'chance':>8}" if chance else ""), "-" * (35 + (9 if chance else 0))]
    for key in METRIC_KEYS:
        ratio = after[key] / before[key] if before[key] > 0 else float("inf")
        line = f"{key:<9} {before[key]:>8.4f} {after[key]:>8.4f} {ratio:>6.2f}x"
        lines.append(line + (f" {chance[key]:>8.4f}" if chance else ""))
    return "\n".join(lines)


def _metrics_only(result: dict) -> dict:
    return {k: float(result[k]) for k in METRIC_KEYS} | {
        k: result[k] for k in ("n_queries", "n_excluded", "ap")}


def _resume_command(out: Path, config: str, seed: int, overrides) -> str:
    args = ["amalib", "demo", "--out", str(out), "--config", str(config), "--seed", str(seed)]
    args += [a for o in overrides for a in ("--set", o)]
    return shlex.join([*args, "--resume", str(out / "train" / "checkpoint.pth")])


@contextmanager
def _signals_interrupt(next_step):
    """SIGINT/SIGTERM raise :class:`TrainingInterrupted` at once (the trainer's own handler takes
    over inside ``fit``, which stops after its current step); ``next_step(started)`` says how to
    go on."""
    from amalib.train.interrupt import TrainingInterrupted

    started = time.time()

    def handle(signum, _frame):
        raise TrainingInterrupted(
            signum, f"{signal.Signals(signum).name} received: the demo stopped before its "
                    f"result; no summary was written. {next_step(started)}")

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handle)
        except ValueError:  # not the main thread: signals stay as they are
            pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_demo(out: str | Path = "runs/demo", *, config: str = "mini", seed: int = 0,
             overrides=(), progress: bool = True, figures: bool = True,
             resume: str | Path | None = None, log=print) -> dict:
    """Run the main job and return the summary written to ``<out>/summary.json``.

    Args:
        out: Run directory (created; a previous run there is overwritten).
        config: Config name or path (default: the embedded ``mini`` benchmark).
        seed: Training seed (the benchmark itself is fixed by ``data.generate.seed``).
        overrides: Extra ``key=value`` config overrides.
        progress: Progress bars.
        figures: Write the retrieval grid and UMAP figures.
        resume: A training checkpoint of an interrupted demo (``<out>/train/checkpoint.pth``):
            the starting backbone is evaluated as usual, then training continues from it.
        log: Line printer.

    Raises:
        TrainingInterrupted: SIGINT or SIGTERM arrived; nothing after it ran and no summary
            was written (the message says how to resume).
    """
    out = Path(out)
    with _signals_interrupt(lambda started: _next_step(out, config, seed, overrides, resume,
                                                        started)):
        return _run_demo(out, config, seed, overrides, progress, figures, resume, log)


def _next_step(out: Path, config: str, seed: int, overrides, resume, started=None) -> str:
    """How to go on after an interruption: resume when this run has a checkpoint to resume."""
    ckpt = out / "train" / "checkpoint.pth"
    ours = resume is not None or (ckpt.is_file() and started is not None
                                  and ckpt.stat().st_mtime >= started)
    if ours:
        return "Resume with: " + _resume_command(out, config, seed, overrides)
    args = ["amalib", "demo", "--out", str(out), "--config", str(config), "--seed", str(seed)]
    return "Start again with: " + shlex.join(args + [a for o in overrides for a in ("--set", o)])


def _run_demo(out, config, seed, overrides, progress, figures, resume, log):
    import torch

    from amalib.config import load_config
    from amalib.retrieval.evaluate import test_features
    from amalib.train.interrupt import TrainingInterrupted
    from amalib.train.trainer import Trainer, read_resume_checkpoint
    from amalib.viz.curves import save_training_curves

    t_start = time.perf_counter()
    if resume is not None and not Path(resume).is_file():
        raise FileNotFoundError(f"checkpoint to resume the demo from not found: {resume} (run "
                                "`amalib demo` without --resume to start over)")
    cfg = load_config(config, [f"train.seed={seed}", *overrides])
    # Checked before anything is written or built: a damaged or foreign checkpoint stops here.
    resume_state = None if resume is None else read_resume_checkpoint(resume, cfg, "ama")
    out.mkdir(parents=True, exist_ok=True)
    # A summary from an earlier run in this directory must not outlive an interrupted one.
    (out / "summary.json").unlink(missing_ok=True)
    metrics_file = out / "train" / "metrics.jsonl"
    if resume is None and metrics_file.exists():
        metrics_file.unlink()
    trainer = Trainer(cfg, out / "train", progress=progress, log=log)
    dcfg = cfg["data"]
    kw = dict(batch_size=dcfg["eval_batch_size"], device=trainer.device,
              num_workers=int(dcfg["num_workers"]), progress=progress)

    def evaluate():
        q, g = test_features(trainer.teacher.backbone, trainer.eval_sets, **kw)
        result = evaluate_retrieval(q.features[q.valid], q.labels[q.valid],
                                    g.features[g.valid], g.labels[g.valid], ap=cfg["eval"]["ap"])
        return result, q, g

    before, q0, g0 = evaluate()
    starting = describe_starting_backbone(cfg, trainer, features=(q0, g0))
    log(f"starting backbone ({cfg['model']['pretrained']}, {starting['objective']}): "
        f"mAP@all {before['mAP@all']:.4f}")
    if resume is not None:
        trainer.resume(resume, resume_state)
    try:
        trainer.fit()
    except TrainingInterrupted as stop:
        name = signal.Signals(stop.signum).name
        raise TrainingInterrupted(
            stop.signum, f"{name} received: the demo stopped during training (checkpoint "
            f"{out / 'train' / 'checkpoint.pth'}); no summary was written. Resume with: "
            + _resume_command(out, config, seed, overrides)) from None
    after, q1, g1 = evaluate()
    summary = {
        "before": _metrics_only(before),
        "after": _metrics_only(after),
        # What a random ranking of the same gallery scores, metric by metric.
        "chance": {k: v for k, v in chance_levels(q1.labels[q1.valid], g1.labels[g1.valid],
                                                  ap=cfg["eval"]["ap"]).items()
                   if k in METRIC_KEYS},
        "config": config,
        "seed": seed,
        "starting_backbone": starting,
        "epochs": cfg["train"]["epochs"],
        # A run reproduces exactly for a given CPU thread count, not across counts (floats are
        # summed in another order, and training amplifies the difference): record it.
        "torch_threads": torch.get_num_threads(),
        "term_health": term_health(trainer.history, int(cfg["model"]["out_dim"])),
        # Peak resident memory of this process, and of the largest data-loader worker (each
        # worker is a separate process with its own peak; the two are not simultaneous sums).
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
        "peak_rss_worker_gb": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2, 2),
    }
    if figures:
        summary["figures"] = _figures(out, trainer, (q0, g0), (q1, g1))
        # The training curves, with the starting backbone and chance beside them.
        save_training_curves(trainer.history, out / "train" / "curves.png",
                             out_dim=cfg["model"]["out_dim"], start=summary["before"],
                             chance=summary["chance"])
    summary["wall_time_s"] = round(time.perf_counter() - t_start, 1)
    # Atomic: a signal while writing leaves no half summary behind.
    partial = out / "summary.json.partial"
    partial.write_text(json.dumps(summary, indent=2))
    partial.replace(out / "summary.json")
    log("\nzero-shot retrieval on the unseen classes (sketch -> photo):")
    log(format_comparison(summary["before"], summary["after"], summary["chance"]))
    for warning in summary["term_health"]["warnings"]:
        log(f"note: {warning}")
    log(f"\nrun directory: {out}  (summary.json, retrieval_grid.png, umap.png, train/curves.png)")
    return summary


def term_health(history: list[dict], out_dim: int, *, tolerance: float = 0.05) -> dict:
    """Which loss terms of a run did useful work, from its per-epoch records.

    A self-distillation term whose epoch-mean loss stays within ``tolerance`` (relative) of
    ``ln out_dim`` in every epoch sits at its degenerate value (the uniform output); a confidence
    filter that keeps 0 % of a domain in an epoch where cluster contrast is on gives that domain
    no cluster-contrast gradient.

    Returns:
        ``{"sd_<domain>": {"degenerate": ln K, "epoch_means": [...], "at_degenerate": bool},
        "cc_kept_<domain>": {"epoch_means": [...], "zero_in_epochs": [...]}, "warnings": [...]}``
    """
    import math

    degenerate = math.log(out_dim)
    report: dict = {"warnings": []}
    for key in ("sd_sketch", "sd_photo"):
        values = [r["loss"][key] for r in history if key in r.get("loss", {})]
        if not values:
            continue
        stuck = all(abs(v - degenerate) <= tolerance * degenerate for v in values)
        report[key] = {"degenerate": round(degenerate, 4),
                       "epoch_means": [round(v, 4) for v in values], "at_degenerate": stuck}
        if stuck:
            report["warnings"].append(
                f"{key} stayed within {tolerance:.0%} of ln {out_dim} = {degenerate:.2f} in every "
                "epoch: the DINO head's output is close to uniform in that domain")
    for key in ("cc_kept_sketch", "cc_kept_photo"):
        epochs = [(r["epoch"], r[key]) for r in history if key in r]
        if not epochs:
            continue
        zero = [e for e, v in epochs if v <= 0]
        report[key] = {"epoch_means": [round(v, 4) for _, v in epochs], "zero_in_epochs": zero}
        if zero:
            report["warnings"].append(
                f"the confidence filter kept 0 % of the {key[8:]} images in epochs {zero}: no "
                "cluster-contrast gradient there")
    return report


def describe_starting_backbone(cfg: dict, trainer, *, features=None) -> dict:
    """Where the starting backbone comes from and how genuine it is, for ``summary.json``.

    ``file`` and the provenance an exported file records (``objective``, ``pool_classes``,
    ``steps``, ``command``, …; :func:`amalib.train.supervised.export_backbone`), then
    ``report`` and ``random_init``: :func:`amalib.retrieval.evaluate.backbone_report` of the
    starting backbone (from ``features``, its ``(sketch_test, photo_test)`` features, when
    given) and of a randomly initialised one of the same architecture (seed 0).
    """
    import torch

    from amalib.models import create_vit
    from amalib.models.checkpoint import read_dino_checkpoint
    from amalib.retrieval.evaluate import backbone_report, features_report

    spec = cfg["model"]["pretrained"]
    out: dict = {"file": str(spec)}
    if trainer.pretrained is None:
        out["objective"] = "none (random initialisation)"
    elif trainer.pretrained.startswith("hub:"):
        out["objective"] = "as published on the hub"
    else:
        extra = read_dino_checkpoint(trainer.pretrained).extra
        out.update(extra.get("provenance") or {})
        out.setdefault("objective", "unknown (the file records no provenance)")
    dcfg, mcfg = cfg["data"], cfg["model"]
    kw = dict(batch_size=dcfg["eval_batch_size"], device=trainer.device,
              num_workers=int(dcfg["num_workers"]), progress=False, ap=cfg["eval"]["ap"])
    if features is not None:  # the starting backbone's test features, already extracted
        out["report"] = features_report(*features, ap=kw["ap"])
    else:
        out["report"] = backbone_report(trainer.teacher.backbone, trainer.eval_sets, **kw)
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    random_init = create_vit(mcfg["arch"], patch_size=mcfg["patch_size"],
                             img_size=mcfg["img_size"], stem=mcfg["stem"])
    torch.random.set_rng_state(state)
    out["random_init"] = backbone_report(random_init, trainer.eval_sets, **kw)
    return out


def _figures(out: Path, trainer, before, after) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from amalib.viz.embedding import plot_umap
    from amalib.viz.retrieval import plot_retrieval_grid, top_k

    sketches, photos = trainer.eval_sets["sketch_test"], trainer.eval_sets["photo_test"]
    names = sketches.class_names
    (q1, g1) = after
    # Two queries per class for the first six classes, fixed by position (no cherry-picking).
    labels = q1.labels.numpy()
    picks = [i for c in np.unique(labels)[:6] for i in np.flatnonzero(labels == c)[:2]]
    ranked, _ = top_k(q1.features[picks], g1.features, k=8)
    fig = plot_retrieval_grid(
        [sketches.root / sketches.paths[i] for i in picks],
        [photos.root / p for p in photos.paths], ranked,
        query_labels=labels[picks], gallery_labels=g1.labels.numpy(), class_names=names,
        title="AMA: top-8 photos per sketch query (green ✓ = same class, red ✗ = another)")
    fig.savefig(out / "retrieval_grid.png", dpi=90)
    plt.close(fig)
    (q0, g0) = before
    fig = plot_umap({"starting backbone": (q0.features, q0.labels, g0.features, g0.labels),
                     "after AMA": (q1.features, q1.labels, g1.features, g1.labels)},
                    class_names=names, max_per_domain=600)
    fig.savefig(out / "umap.png", dpi=90)
    plt.close(fig)
    return ["retrieval_grid.png", "umap.png", "train/curves.png"]
