"""Command line: ``amalib demo | train | eval | prepare | index | retrieve | pretrain | ablate``.

``python -m amalib ...`` works too, and so does ``torchrun --nproc_per_node N -m amalib train``.

One error path: a mistake in the input — a bad option or path, a file that is missing,
truncated or of another kind (a checkpoint where an index belongs, a DINO file where a run
belongs, a file that is not an image, a drawing of the wrong shape), an unknown config key, a
value of the wrong type, an impossible combination — prints one ``error:`` line on stderr that
names the file or key and what to do, and exits with status 2 (:mod:`amalib.errors`). A run that
fails for another reason exits with status 1: a diverging loss, a full disk or GPU memory with
one line, a bug in amalib with its traceback. ``--debug`` prints the traceback of every error.
A ``demo``, ``train`` or ``pretrain`` stopped by SIGINT or SIGTERM writes its checkpoint, says how
to resume and exits with status 130 or 143.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

__all__ = ["main", "build_parser"]

#: The largest seed (numpy's seeds are 32-bit); seeds are 0 or more.
MAX_SEED = 2**32 - 1


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, with ``--debug`` on every command
    (``amalib --debug eval ...`` and ``amalib eval ... --debug`` alike)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.add_help:  # not a parent parser
            self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                              help="print the traceback of an error too (for a bug report)")

    def parse_args(self, args=None, namespace=None):
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:  # argparse reports them from the top parser; name the command's help
            command = [getattr(parsed, k, None) for k in ("command", "index_command")]
            self.exit(2, f"error: unrecognized arguments: {' '.join(extra)} (see `"
                         + " ".join([self.prog, *filter(None, command), "--help`)\n"]))
        return parsed

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _int_at_least(low: int, high: int | None = None, what: str = "an integer"):
    """An argparse type: an integer from ``low`` (to ``high``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be {what} {bounds}, got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


_SEED = _int_at_least(0, MAX_SEED, "a seed, an integer")


def _add_config_args(p: argparse.ArgumentParser, default: str | None = "mini") -> None:
    """``--config`` and the run options, for commands that start from a config."""
    p.add_argument("--config", default=default,
                   help="shipped config name (mini, sketchy21, sketchy25, tuberlin, quickdraw, "
                        "mini_pretrain) or a YAML path (default: %(default)s)")
    _add_run_args(p, "a config value", example="train.epochs=3")


def _add_run_args(p: argparse.ArgumentParser, what: str = "the checkpoint's config", *,
                  example: str = "data.root=/data", progress: bool = True) -> None:
    """``--set``, ``--device`` and (optionally) ``--no-progress``; ``what`` names what --set
    overrides in the help."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override {what}, e.g. --set {example} (repeatable)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    if progress:
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")


_CHECKPOINT_HELP = ("a checkpoint written by `amalib train`, or ama_mini: the trained AMA model that "
                    "ships with amalib (the teacher of `amalib demo --seed 0`, mini benchmark)")
_GALLERY_HELP = ("BENCHMARK:SPLIT (split test: unseen photos, seen: seen-class photos, all: both) "
                 "under the config's data.root, or a folder of images (labelled by sub-folder) "
                 "(default: <the checkpoint's benchmark>:test)")


def _metric_conventions() -> dict:
    from amalib.metrics import CONVENTIONS

    return CONVENTIONS


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="amalib",
        description="Asymmetric Mutual Alignment for unsupervised zero-shot sketch-based "
                    "image retrieval.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="the main job on the embedded mini-benchmark (CPU, minutes)")
    p.add_argument("--out", default="runs/demo", help="run directory (default: %(default)s)")
    p.add_argument("--seed", type=_SEED, default=0,
                   help=f"training seed, 0 to {MAX_SEED} (default: %(default)s)")
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

    p = sub.add_parser("eval", help="zero-shot retrieval metrics of a checkpoint",
                       description="Retrieval metrics of a checkpoint's teacher on the unseen "
                                   "classes of its benchmark, the hardest classes and a hubness "
                                   "diagnostic.")
    p.add_argument("--checkpoint", required=True, help=_CHECKPOINT_HELP)
    p.add_argument("--protocol", choices=("zs", "gzs", "p2s"), default="zs",
                   help="zs: unseen sketches query the unseen photos (the benchmark's "
                        "protocol); gzs: generalised, the gallery also holds the seen-class "
                        "photos; p2s: unseen photos query the unseen sketches "
                        "(default: %(default)s)")
    p.add_argument("--hardest", type=_int_at_least(0), default=5, metavar="N",
                   help="print the N classes with the lowest AP (default: %(default)s)")
    p.add_argument("--hub-k", type=_int_at_least(1), default=10, metavar="K",
                   help="list length of the hubness diagnostic: how often each gallery item is "
                        "in a query's top K (default: %(default)s)")
    p.add_argument("--ap", choices=("interpolated", "sklearn"), default=None,
                   help="AP convention (default: the checkpoint config's)")
    p.add_argument("--convention", choices=tuple(_metric_conventions()), default=None,
                   help="read the metrics as another code base does, for numbers comparable "
                        "with its tables: " + "; ".join(
                            f"{name}: {c.source}" for name, c in _metric_conventions().items())
                        + " (docs/metric_conventions.md; default: ama)")
    p.add_argument("--json", default=None, help="also write the metrics to this file")
    _add_run_args(p)

    p = sub.add_parser("prepare", help="check a downloaded benchmark or build its file lists")
    p.add_argument("benchmark", help="sketchy21, sketchy25, tuberlin, quickdraw or mini")
    p.add_argument("--root", required=True, help="data root holding the benchmark's folder")
    p.add_argument("--build-from", default=None,
                   help="raw class-per-folder download (<raw>/sketch/<class>/*, "
                        "<raw>/photo/<class>/*) to build the file lists from")

    p = sub.add_parser("index", help="build or describe a gallery index for `retrieve --index`")
    isub = p.add_subparsers(dest="index_command", required=True)
    q = isub.add_parser("build", help="extract a gallery once and index it",
                        description="Extract a photo gallery with a checkpoint's teacher and "
                                    "write its features, paths, labels and a faiss index to one "
                                    "file (no pickle).")
    q.add_argument("--checkpoint", required=True, help=_CHECKPOINT_HELP)
    q.add_argument("--gallery", default=None, help=_GALLERY_HELP)
    q.add_argument("--out", required=True, help="index file to write, e.g. gallery.amaidx")
    q.add_argument("--kind", choices=("flat", "hnsw", "ivf"), default="flat",
                   help="flat: exact inner product; hnsw, ivf: approximate, for large galleries "
                        "(default: %(default)s)")
    q.add_argument("--param", dest="params", action="append", default=[], metavar="KEY=VALUE",
                   help="index parameter, repeatable: hnsw M, ef_construction, ef_search "
                        "(32, 100, 128); ivf nlist, nprobe (about 4*sqrt(N), 32)")
    _add_run_args(q)
    q = isub.add_parser("info", help="what an index file holds and how it was built")
    q.add_argument("index", help="index file")

    p = sub.add_parser("retrieve", help="top-k photos for sketches or a drawing: from an index, "
                                        "or a checkpoint",
                       description="Rank a gallery for each sketch and print paths, labels and "
                                   "cosine scores. With --index the gallery is read from the "
                                   "index file (no extraction); otherwise it is extracted now "
                                   "with --checkpoint. The queries are image files (--sketch) or "
                                   "a drawing saved by the notebook's sketch pad (--strokes, JSON "
                                   "polylines rendered like the benchmark's sketches).")
    p.add_argument("--index", default=None, help="gallery index from `amalib index build`")
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint (required without --index; with it, default: the "
                        "checkpoint the index records): " + _CHECKPOINT_HELP)
    p.add_argument("--gallery", default=None, help="without --index: " + _GALLERY_HELP)
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--sketch", nargs="+", help="sketch image file(s)")
    query.add_argument("--strokes", help='drawing as JSON, {"canvas_size": 256, "strokes": '
                                         '[[[x, y], ...], ...]} (the sketch pad\'s pad.save())')
    p.add_argument("--label", default=None,
                   help="class the sketches show (name or id): marks hits and misses")
    p.add_argument("--k", "--topk", dest="k", type=_int_at_least(1), default=8,
                   help="results per sketch (default: %(default)s)")
    p.add_argument("--out", default=None,
                   help="picture of the results (default: retrieval.png without --index, "
                        "none with it)")
    p.add_argument("--json", default=None, help="also write the results to this file")
    _add_run_args(p, progress=False)

    p = sub.add_parser("ablate", help="SD only, +CC, +MA, +SG and the supervised oracle on the "
                                      "mini-benchmark over seeds")
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--seeds", type=_SEED, nargs="+", default=[0, 1, 2],
                   help=f"training seeds, 0 to {MAX_SEED} (default: 0 1 2)")
    p.add_argument("--rows", nargs="+", default=None, metavar="ROW",
                   help="trained rows to run: sd, sd+cc, sd+cc+ma, ama, oracle (default: all)")
    p.add_argument("--ama-runs", default=None, metavar="PATH",
                   help="take the AMA row from finished `amalib demo` runs instead of training "
                        "it again: a path with {seed}, e.g. 'runs/demo_s{seed}' (their config "
                        "must be the ablation's)")
    _add_config_args(p)
    return parser


# --------------------------------------------------------------------------- commands


def _spec(root, name: str):
    from amalib.config import ConfigError
    from amalib.data.benchmarks import resolve_benchmark

    try:
        return resolve_benchmark(root, name)
    except KeyError as err:
        raise ConfigError(err.args[0]) from err


def _output_file(value: str | None, option: str) -> Path | None:
    """An output file option, checked before any work: not a folder, not inside a file (its
    folder is created when it is written)."""
    from amalib.config import ConfigError

    if value is None:
        return None
    path = Path(value)
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder; give a file name (e.g. a file inside "
                          "it)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {path}: {parent} is a file, not a folder; choose "
                                  "another path")
            break
    return path


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _model_overrides(overrides: list[str], command: str) -> None:
    """``--set model.*`` cannot change a trained model: refuse it instead of ignoring it."""
    from amalib.config import ConfigError

    for item in overrides:
        key = item.partition("=")[0].strip()
        if key == "model" or key.startswith("model."):
            raise ConfigError(f"--set {item}: {command} reads the model from the checkpoint, so "
                              "model settings cannot change; train a run with them instead")


def _cmd_demo(args) -> int:
    from amalib.experiments.demo import run_demo

    run_demo(args.out, config=args.config, seed=args.seed, overrides=args.overrides,
             progress=not args.no_progress, resume=args.resume)
    return 0


def _cmd_train(args, mode: str = "ama") -> int:
    from amalib.config import ConfigError, load_config
    from amalib.train.trainer import Trainer

    if args.config is None:
        raise ConfigError("--config is required (e.g. --config sketchy21 or --config mini)")
    cfg = load_config(args.config, args.overrides)
    if mode == "pretrain":
        _output_file(args.export, "--export")
    objective = cfg["pretrain"]["objective"]
    if mode == "pretrain" and objective not in ("dino", "supervised"):
        raise ConfigError(f"pretrain.objective must be 'dino' or 'supervised', got {objective!r}")
    if mode == "pretrain" and objective == "supervised":
        from amalib.train.supervised import export_backbone, pretrain_supervised

        checkpoint = pretrain_supervised(cfg, args.out, device=args.device, resume=args.resume,
                                         progress=not args.no_progress)
        if args.export:
            command = " ".join(["amalib", *_pretrain_command(args)])
            path = export_backbone(checkpoint, args.export, command=command)
            print(f"backbone exported to {path}")
        return 0
    trainer = Trainer(cfg, args.out, device=args.device, mode=mode, resume=args.resume,
                      progress=not args.no_progress)
    history = trainer.fit()  # SIGINT/SIGTERM: TrainingInterrupted, handled in main()
    if trainer.dist.rank == 0:
        from amalib.viz.curves import save_training_curves

        save_training_curves(history, Path(args.out) / "curves.png",
                             out_dim=cfg["model"]["out_dim"] if mode == "ama" else None)
    if mode == "pretrain" and getattr(args, "export", None):
        from amalib.train.state import export_teacher

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
    from amalib.config import ConfigError, apply_overrides, eval_transform_from_config
    from amalib.data.datasets import build_eval_sets
    from amalib.distributed import init_distributed
    from amalib.retrieval.evaluate import evaluate_protocol, load_trained_backbone

    conventions = _metric_conventions()
    if args.convention and args.ap and args.ap != conventions[args.convention].ap:
        raise ConfigError(f"--ap {args.ap} contradicts --convention {args.convention}, whose AP "
                          f"is {conventions[args.convention].ap}: pass one of the two")
    json_out = _output_file(args.json, "--json")
    _model_overrides(args.overrides, "eval")
    backbone, cfg = load_trained_backbone(args.checkpoint)
    cfg = apply_overrides(cfg, args.overrides)
    device = init_distributed(args.device).device
    dcfg = cfg["data"]
    if dcfg.get("generate"):  # the embedded benchmark (e.g. of `ama_mini`): generated on first use
        from amalib.config import ensure_generated_data

        ensure_generated_data(dcfg)
    spec = _spec(dcfg["root"], cfg["benchmark"])
    sets = build_eval_sets(dcfg["root"], spec, eval_transform_from_config(cfg))
    # A named convention sets its own AP; the config's AP applies only without one.
    ap = args.ap or (None if args.convention else cfg["eval"]["ap"])
    result = evaluate_protocol(backbone.to(device), sets, args.protocol, ap=ap,
                               convention=args.convention, hub_k=args.hub_k,
                               batch_size=dcfg["eval_batch_size"], device=device,
                               progress=not args.no_progress)
    print(_format_protocol(cfg["benchmark"], result, args.hardest))
    if json_out:
        _write_text(json_out, json.dumps(result, indent=2))
    return 0


def _format_protocol(benchmark: str, result: dict, hardest: int) -> str:
    """The lines `amalib eval` prints for one protocol."""
    from amalib.metrics import METRIC_KEYS as keys
    lines = [f"{benchmark} {result['protocol']} ({result['convention']} convention, "
             f"{result['ap']} AP, {result['n_used']} queries, "
             f"{result['n_excluded']} excluded, {result['n_gallery']} in the gallery): "
             + "  ".join(f"{k} {result[k]:.4f}" for k in keys)]
    if "zs" in result:
        lines.append("  the same without the seen photos (zs): "
                     + "  ".join(f"{k} {result['zs'][k]:.4f}" for k in keys))
        lines.append(f"  seen-class photos in the top 100 / 200: "
                     f"{result['seen_share@100']:.1%} / {result['seen_share@200']:.1%} "
                     f"(chance {result['n_seen_gallery'] / result['n_gallery']:.1%})")
    if hardest > 0:
        lines.append("  hardest classes (AP@all): " + ", ".join(
            f"{row['class']} {row['AP']:.3f}" for row in result["per_class"][:hardest]))
    hub = result["hubness"]
    top = hub["hubs"][0]
    lines.append(f"  hubness (top {hub['k']}): skewness {hub['skewness']:.2f}, "
                 f"{hub['never_retrieved']:.1%} of the gallery never retrieved, the biggest hub "
                 f"is in {hub['top_hub_share']:.1%} of the lists ({top.get('path', top['index'])})")
    return "\n".join(lines)


def _cmd_prepare(args) -> int:
    from amalib.data.prepare import prepare_main

    _spec(args.root, args.benchmark)  # an unknown benchmark name is a one-line error
    return prepare_main(args.benchmark, args.root, build_from=args.build_from)


def _index_params(items: list[str]) -> dict:
    from amalib.config import ConfigError

    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise ConfigError(f"--param {item}: expected KEY=INTEGER, e.g. --param nprobe=64")
        params[key.strip()] = int(value)
    return params


def _cmd_index(args) -> int:
    from amalib.retrieval.gallery import build_gallery_index
    from amalib.retrieval.index import GalleryIndex

    if args.index_command == "info":
        index = GalleryIndex.load(args.index)
        prov = index.provenance
        print(f"{args.index}: {len(index)} images, {index.dim}-d, {index.kind} "
              f"{index.params or ''}".rstrip())
        print(f"  gallery: {prov.get('gallery', {}).get('source')} (root {index.root})"
              + (f", {len(index.class_names)} classes" if index.class_names else ", unlabelled"))
        ckpt = prov.get("checkpoint", {})
        print(f"  checkpoint: {ckpt.get('path')} (weights {str(ckpt.get('weights_sha256'))[:12]})")
        print(f"  model: {prov.get('model')}; transform: {prov.get('transform')}")
        return 0
    out = _output_file(args.out, "--out")
    params = _index_params(args.params)
    _model_overrides(args.overrides, "index build")
    index = build_gallery_index(args.checkpoint, args.gallery, kind=args.kind, params=params,
                                overrides=args.overrides, device=args.device,
                                progress=not args.no_progress)
    path = index.save(out)
    print(f"indexed {len(index)} images ({index.dim}-d, {index.kind} {index.params or ''}) "
          f"to {path}")
    return 0


def _query_label(label: str | None, index) -> int | None:
    """``--label`` (a class id, when it is a number below the class count, else a class name)
    as a class id of the index's gallery (:meth:`GalleryIndex.label_of`); None stays None."""
    from amalib.config import ConfigError

    if label is None:
        return None
    if index.labels is None:
        raise ConfigError(f"--label {label}: the gallery is unlabelled, so there are no hits "
                          "to mark")
    return index.label_of(int(label) if label.isdigit() and int(label) < index.n_classes
                          else label)


def _cmd_retrieve(args) -> int:
    from amalib.config import ConfigError, apply_overrides
    from amalib.retrieval.gallery import (
        build_gallery_index,
        embed_images,
        load_query_model,
        read_query_image,
    )
    from amalib.retrieval.index import GalleryIndex

    if args.index is None and args.checkpoint is None:
        raise ConfigError("retrieve needs --index (a built gallery) or --checkpoint")
    if args.index is not None and (args.gallery or args.overrides):
        raise ConfigError("--gallery and --set apply when the gallery is extracted; with "
                          "--index the gallery is the index's (rebuild it to change them)")
    _model_overrides(args.overrides, "retrieve")
    json_out = _output_file(args.json, "--json")
    out = _output_file(args.out or (None if args.index is not None else "retrieval.png"), "--out")
    if out is not None:
        from matplotlib.figure import Figure

        formats = Figure().canvas.get_supported_filetypes()
        if out.suffix.lower().lstrip(".") not in formats:
            raise ConfigError(f"--out {out}: a picture needs one of the suffixes "
                              f"{', '.join('.' + f for f in sorted(formats))}, e.g. top.png")
    strokes = canvas_size = None
    if args.strokes is not None:  # a drawing: checked now, rendered once the sketch size is known
        from amalib.data.strokes import load_strokes

        strokes, canvas_size = load_strokes(args.strokes)
        names = [Path(args.strokes)]
    else:
        names = [Path(p) for p in args.sketch]
        for sketch in names:
            if not sketch.is_file():
                raise FileNotFoundError(f"sketch image not found: {sketch}")
    import torch

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def label_and_model(index):
        """The query's class in ``index`` and the model that embeds queries for it."""
        return (_query_label(args.label, index),
                *load_query_model(index, args.checkpoint, device=device, with_config=True))

    if args.index is not None:  # the index and its model are checked before the sketches
        index = GalleryIndex.load(args.index)
        label, backbone, transform, config = label_and_model(index)
    # Sketches decoded now: a file that is not an image stops before a gallery is extracted.
    queries = names if strokes is not None else [read_query_image(p) for p in names]
    if args.index is None:
        index = build_gallery_index(args.checkpoint, args.gallery, overrides=args.overrides,
                                    device=args.device, progress=False)
        label, backbone, transform, config = label_and_model(index)
    if strokes is not None:  # rendered like the benchmark's sketches, then embedded like a file
        from amalib.data.strokes import render_strokes
        from amalib.retrieval.sketch_query import sketch_query_settings

        size = sketch_query_settings(apply_overrides(config, args.overrides))["image_size"]
        queries = [render_strokes(strokes, image_size=size, canvas_size=canvas_size)]
    ranked, scores = index.search(embed_images(backbone, transform, queries, device=device),
                                  args.k)
    label_name = index.class_name(label)
    results = []
    for name, row, row_scores in zip(names, ranked, scores):
        if len(names) > 1:
            print(f"{name}:")
        entries = []
        for rank, (j, s) in enumerate(((int(j), float(s)) for j, s in zip(row, row_scores)
                                       if j >= 0), 1):
            cls = index.label_name(j)
            hit = None if label is None else bool(index.labels[j] == label)
            print(f"{rank:>2}. {index.paths[j]}  (" + (f"{cls}, " if cls is not None else "")
                  + f"cosine {s:.3f})" + ("" if hit is None else "  hit" if hit else "  miss"))
            entries.append({"rank": rank, "path": index.paths[j], "label": cls, "cosine": s,
                            **({} if hit is None else {"hit": hit})})
        if label is not None:
            print(f"hits: {sum(e['hit'] for e in entries)}/{len(entries)} photos of {label_name}")
        results.append({"sketch": str(name), "query": "image" if strokes is None else "strokes",
                        **({} if label is None else {"query_label": label_name}),
                        "results": entries})
    if json_out:
        _write_text(json_out, json.dumps(results, indent=2))
    if out:
        import matplotlib

        matplotlib.use("Agg")
        if strokes is not None:  # the sketch pad's figure: strokes, rendered sketch, photos
            from amalib.apps.sketch_widget import plot_sketch_query
            from amalib.retrieval.sketch_query import SketchQueryResult

            result = SketchQueryResult.of_search(queries[0], index, ranked[0], scores[0], label)
            side = max(canvas_size) if isinstance(canvas_size, tuple) else canvas_size
            fig = plot_sketch_query(result, strokes=strokes, canvas_size=side,
                                    title=f"top-{len(result)} photos for {names[0].name}")
        else:
            from amalib.viz.retrieval import plot_retrieval_grid

            shown = ", ".join(s.name for s in names[:3]) + (" …" if len(names) > 3 else "")
            fig = plot_retrieval_grid(
                names, [index.image_path(j) for j in range(len(index))], ranked.clip(min=0),
                query_labels=None if label is None else [label] * len(names),
                gallery_labels=None if label is None else index.labels,
                class_names=index.class_names, title=f"top-{ranked.shape[1]} for {shown}")
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
        print(f"picture written to {out}")
    return 0




def _cmd_ablate(args) -> int:
    from amalib.config import ConfigError
    from amalib.experiments.ablation import (
        ROWS,
        format_ablation,
        format_differences,
        paired_differences,
        run_ablation,
    )

    rows = tuple(args.rows or ROWS)
    if set(rows) - set(ROWS):
        raise ConfigError(f"--rows: unknown {sorted(set(rows) - set(ROWS))}; choose from "
                          f"{', '.join(ROWS)}")
    table = run_ablation(args.out, seeds=args.seeds, config=args.config,
                         overrides=args.overrides, rows=rows, ama_runs=args.ama_runs,
                         progress=not args.no_progress)
    print(format_ablation(table))
    if paired_differences(table):  # each added term's effect, paired by seed, with its interval
        print("\nWhat each term adds, paired by seed (written to ablation_results.json):\n")
        print(format_differences(table))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit status (0; 2 for a mistake in the input; 1 for another
    failure; 130/143 when stopped by a signal). See the module docstring.

    A usage error found by the argument parser (an unknown option, a missing or ill-typed value)
    prints its one line and raises ``SystemExit(2)``, as argparse does; ``--help`` raises
    ``SystemExit(0)``.
    """
    args = build_parser().parse_args(argv)
    commands = {
        "demo": _cmd_demo,
        "train": _cmd_train,
        "pretrain": lambda a: _cmd_train(a, mode="pretrain"),
        "eval": _cmd_eval,
        "prepare": _cmd_prepare,
        "index": _cmd_index,
        "retrieve": _cmd_retrieve,
        "ablate": _cmd_ablate,
    }
    debug = getattr(args, "debug", False)
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:  # outside training (which checkpoints and raises its own error)
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        from amalib.errors import one_line, user_error_line
        from amalib.train.interrupt import TrainingDivergedError, TrainingInterrupted

        if isinstance(err, TrainingInterrupted):  # 130 (SIGINT) or 143 (SIGTERM)
            print(f"interrupted: {err}", file=sys.stderr)
            return err.exit_status
        answer = user_error_line(err)
        if isinstance(err, TrainingDivergedError):
            answer = one_line(str(err)), 1
        if answer is None:  # not the input: a bug in amalib, shown with its traceback
            print("amalib stopped on an internal error (a bug, not a mistake in your input); "
                  "please report it with the traceback below", file=sys.stderr)
            raise
        if debug:
            traceback.print_exc()
        print(f"error: {answer[0]}", file=sys.stderr)
        return answer[1]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
