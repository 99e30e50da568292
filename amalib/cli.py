"""Command line: ``amalib demo | train | eval | prepare | retrieve | pretrain | ablate``.

``python -m amalib ...`` works too, and so does ``torchrun --nproc_per_node N -m amalib train``.
User mistakes (a bad path, an unknown config key or benchmark) print one ``error:`` line and
exit with status 2 instead of a traceback. A ``demo``, ``train`` or ``pretrain`` stopped by SIGINT
or SIGTERM writes its checkpoint, says how to resume and exits with status 130 or 143.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]


def _add_config_args(p: argparse.ArgumentParser, default: str | None = "mini") -> None:
    p.add_argument("--config", default=default,
                   help="shipped config name (mini, sketchy21, sketchy25, tuberlin, quickdraw, "
                        "mini_pretrain) or a YAML path (default: %(default)s)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amalib",
        description="Asymmetric Mutual Alignment for unsupervised zero-shot sketch-based "
                    "image retrieval.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="the main job on the embedded mini-benchmark (CPU, minutes)")
    p.add_argument("--out", default="runs/demo", help="run directory (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    p.add_argument("--resume", default=None,
                   help="training checkpoint of an interrupted demo (<out>/train/checkpoint.pth)")
    _add_config_args(p)

    p = sub.add_parser("train", help="train AMA on a benchmark")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", default=None, help="checkpoint to continue from")
    _add_config_args(p, default=None)

    p = sub.add_parser("pretrain", help="the embedded starting backbone, on the mini-benchmark's "
                                        "pool classes (pretrain.objective: supervised or dino)")
    p.add_argument("--out", default="runs/mini_pretrain", help="run directory")
    p.add_argument("--resume", default=None, help="checkpoint to continue from")
    p.add_argument("--export", default=None,
                   help="also write the backbone (supervised; DINO: the teacher with its head) "
                        "as a float16 DINO-style file here")
    _add_config_args(p, default="mini_pretrain")

    p = sub.add_parser("eval", help="zero-shot retrieval metrics of a checkpoint")
    p.add_argument("--checkpoint", required=True, help="checkpoint written by `amalib train`")
    p.add_argument("--ap", choices=("interpolated", "sklearn"), default=None,
                   help="AP convention (default: the checkpoint config's)")
    p.add_argument("--json", default=None, help="also write the metrics to this file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override the checkpoint's config, e.g. --set data.root=/data")
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("prepare", help="check a downloaded benchmark or build its file lists")
    p.add_argument("benchmark", help="sketchy21, sketchy25, tuberlin, quickdraw or mini")
    p.add_argument("--root", required=True, help="data root holding the benchmark's folder")
    p.add_argument("--build-from", default=None,
                   help="raw class-per-folder download (<raw>/sketch/<class>/*, "
                        "<raw>/photo/<class>/*) to build the file lists from")

    p = sub.add_parser("retrieve", help="top-k photos for one sketch, as a picture",
                       description="Top-k photos of the unseen-class gallery for one sketch: an "
                                   "image file (--sketch) or a drawing saved by the notebook's "
                                   "sketch pad (--strokes, JSON polylines rendered like the "
                                   "benchmark's sketches).")
    p.add_argument("--checkpoint", required=True)
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--sketch", help="sketch image file")
    query.add_argument("--strokes", help='drawing as JSON, {"canvas_size": 256, "strokes": '
                                         '[[[x, y], ...], ...]} (the sketch pad\'s pad.save())')
    p.add_argument("--label", default=None,
                   help="class the sketch shows (name or id): marks hits and misses")
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--out", default="retrieval.png", help="output picture")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--device", default=None)

    p = sub.add_parser("ablate", help="SD only, +CC, +MA, +SG and the supervised oracle on the "
                                      "mini-benchmark over seeds")
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rows", nargs="+", default=None, metavar="ROW",
                   help="trained rows to run: sd, sd+cc, sd+cc+ma, ama, oracle (default: all)")
    _add_config_args(p)
    return parser


# --------------------------------------------------------------------------- commands


def _spec(root, name: str):
    from amalib.data.benchmarks import resolve_benchmark
    from amalib.engine.config import ConfigError

    try:
        return resolve_benchmark(root, name)
    except KeyError as err:
        raise ConfigError(err.args[0]) from err


def _cmd_demo(args) -> int:
    from amalib.engine.demo import run_demo

    run_demo(args.out, config=args.config, seed=args.seed, overrides=args.overrides,
             progress=not args.no_progress, resume=args.resume)
    return 0


def _cmd_train(args, mode: str = "ama") -> int:
    from amalib.engine.config import ConfigError, load_config
    from amalib.engine.trainer import Trainer

    if args.config is None:
        raise ConfigError("--config is required (e.g. --config sketchy21 or --config mini)")
    cfg = load_config(args.config, args.overrides)
    objective = cfg.get("pretrain", {}).get("objective", "dino")
    if mode == "pretrain" and objective not in ("dino", "supervised"):
        raise ConfigError(f"pretrain.objective must be 'dino' or 'supervised', got {objective!r}")
    if mode == "pretrain" and objective == "supervised":
        from amalib.engine.supervised import export_backbone, pretrain_supervised

        checkpoint = pretrain_supervised(cfg, args.out, device=args.device, resume=args.resume,
                                         progress=not args.no_progress)
        if args.export:
            command = " ".join(["amalib", *_pretrain_command(args)])
            path = export_backbone(checkpoint, args.export, command=command)
            print(f"backbone exported to {path}")
        return 0
    trainer = Trainer(cfg, args.out, device=args.device, mode=mode, resume=args.resume,
                      progress=not args.no_progress)
    trainer.fit()
    if trainer.stopped_by is not None:  # the trainer printed where the checkpoint is
        return 128 + trainer.stopped_by
    if mode == "pretrain" and getattr(args, "export", None):
        from amalib.engine.state import export_teacher

        path = export_teacher(Path(args.out) / "checkpoint.pth", args.export)
        print(f"teacher exported to {path}")
    return 0


def _pretrain_command(args) -> list[str]:
    """The ``amalib pretrain`` arguments that reproduce a run (recorded in the exported file)."""
    parts = ["pretrain", "--config", str(args.config), "--out", str(args.out)]
    for item in args.overrides:
        parts += ["--set", item]
    if args.export:
        parts += ["--export", str(args.export)]
    return parts


def _cmd_eval(args) -> int:
    from amalib.data.datasets import build_eval_sets
    from amalib.data.transforms import eval_transform
    from amalib.engine.config import apply_overrides
    from amalib.engine.distributed import init_distributed
    from amalib.engine.evaluate import evaluate_backbone, load_trained_backbone

    backbone, cfg = load_trained_backbone(args.checkpoint)
    cfg = apply_overrides(cfg, args.overrides)
    device = init_distributed(args.device).device
    dcfg = cfg["data"]
    spec = _spec(dcfg["root"], cfg["benchmark"])
    sets = build_eval_sets(dcfg["root"], spec, eval_transform(
        dcfg["eval_resize"], dcfg["eval_crop"],
        interpolation=dcfg.get("resize_interpolation", "bicubic")))  # older run configs: bicubic
    result = evaluate_backbone(backbone.to(device), sets, ap=args.ap or cfg["eval"]["ap"],
                               batch_size=dcfg["eval_batch_size"], device=device,
                               progress=not args.no_progress)
    keys = ("mAP@all", "mAP@200", "P@100", "P@200")
    print(f"{cfg['benchmark']} ({result['ap']} AP, {result['n_used']} queries, "
          f"{result['n_excluded']} excluded): "
          + "  ".join(f"{k} {result[k]:.4f}" for k in keys))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def _cmd_prepare(args) -> int:
    from amalib.data.prepare import prepare_main

    return prepare_main(args.benchmark, args.root, build_from=args.build_from)


def _cmd_retrieve(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from amalib.data.datasets import build_eval_sets, load_rgb
    from amalib.data.strokes import load_strokes, render_strokes
    from amalib.engine.config import ConfigError, apply_overrides
    from amalib.engine.evaluate import load_trained_backbone, test_features
    from amalib.engine.sketch_query import PhotoGallery, query_image, sketch_query_settings
    from amalib.viz.sketch_widget import plot_sketch_query

    strokes = canvas_size = None
    if args.strokes is not None:
        try:
            strokes, canvas_size = load_strokes(args.strokes)
        except ValueError as err:
            raise ConfigError(str(err)) from err
        name = Path(args.strokes).name
    else:
        sketch = Path(args.sketch)
        if not sketch.is_file():
            raise FileNotFoundError(f"sketch image not found: {sketch}")
        name = sketch.name
    backbone, cfg = load_trained_backbone(args.checkpoint)
    cfg = apply_overrides(cfg, args.overrides)
    dcfg = cfg["data"]
    settings = sketch_query_settings(cfg)
    spec = _spec(dcfg["root"], cfg["benchmark"])
    sets = build_eval_sets(dcfg["root"], spec, settings["transform"])
    _, features = test_features(backbone, sets, batch_size=dcfg["eval_batch_size"],
                                progress=False)
    photos = sets["photo_test"]
    gallery = PhotoGallery.build(features.features, [photos.root / p for p in photos.paths],
                                 features.labels, photos.class_names)
    if strokes is not None:
        image = render_strokes(strokes, image_size=settings["image_size"],
                               canvas_size=canvas_size)
    else:
        image = load_rgb(sketch)
    label = args.label
    if label is not None and label.isdigit():
        label = int(label)
    try:
        result = query_image(backbone, image, gallery, transform=settings["transform"],
                             k=args.k, query_label=label)
    except ValueError as err:  # an unknown --label
        raise ConfigError(str(err)) from err
    fig = plot_sketch_query(result, strokes=strokes, canvas_size=canvas_size,
                            title=f"top-{len(result)} photos for {name}")
    fig.savefig(args.out, dpi=100)
    print(result.describe())
    print(f"picture written to {args.out}")
    return 0


def _cmd_ablate(args) -> int:
    from amalib.engine.ablation import ROWS, format_ablation, run_ablation
    from amalib.engine.config import ConfigError

    rows = tuple(args.rows or ROWS)
    if set(rows) - set(ROWS):
        raise ConfigError(f"--rows: unknown {sorted(set(rows) - set(ROWS))}; choose from "
                          f"{', '.join(ROWS)}")
    table = run_ablation(args.out, seeds=args.seeds, config=args.config,
                         overrides=args.overrides, rows=rows, progress=not args.no_progress)
    print(format_ablation(table))
    return 0


def main(argv: list[str] | None = None) -> int:
    from amalib.engine.config import ConfigError
    from amalib.engine.trainer import TrainingDivergedError, TrainingInterrupted

    args = build_parser().parse_args(argv)
    commands = {
        "demo": _cmd_demo,
        "train": _cmd_train,
        "pretrain": lambda a: _cmd_train(a, mode="pretrain"),
        "eval": _cmd_eval,
        "prepare": _cmd_prepare,
        "retrieve": _cmd_retrieve,
        "ablate": _cmd_ablate,
    }
    try:
        return commands[args.command](args)
    except (ConfigError, FileNotFoundError, FileExistsError, NotADirectoryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TrainingDivergedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except TrainingInterrupted as err:  # 130 (SIGINT) or 143 (SIGTERM), as a shell reports it
        print(f"interrupted: {err}", file=sys.stderr)
        return err.exit_status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
