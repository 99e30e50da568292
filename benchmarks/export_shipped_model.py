"""Export a demo run's teacher as the trained model amalib ships (``amalib/assets/ama_mini.pth``).

The shipped model is the teacher of ``amalib demo --seed 0`` (the ``mini`` preset, 6 epochs) in
float16, with its provenance (command, config, seed, torch threads, the demo's before/after
metrics and those of the float16 weights, amalib's version and commit) and the run's
``metrics.jsonl`` records (:func:`amalib.train.state.export_trained_model`). Commands that
accept it by name: ``amalib eval --checkpoint ama_mini``, ``amalib retrieve --checkpoint
ama_mini ...``, ``amalib index build --checkpoint ama_mini ...``.

    amalib demo --seed 0                     # writes runs/demo (about 20 min on 2 CPU cores)
    python benchmarks/export_shipped_model.py runs/demo --out amalib/assets/ama_mini.pth

The float16 weights are evaluated on the run's own benchmark before the file is written
(``after_float16`` in the provenance); the script refuses a run whose summary is missing or
whose float16 mAP@all moves more than 0.005 from the run's own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

COMMAND = "amalib demo --seed 0"
EXPORT = "python benchmarks/export_shipped_model.py runs/demo --out amalib/assets/ama_mini.pth"


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    import amalib
    from amalib.config import ensure_generated_data
    from amalib.metrics import METRIC_KEYS
    from amalib.retrieval.evaluate import evaluate_backbone, load_trained_backbone
    from amalib.train.build import build_eval_datasets
    from amalib.train.state import export_trained_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="the demo's output folder (holds summary.json and train/)")
    parser.add_argument("--out", default="amalib/assets/ama_mini.pth")
    parser.add_argument("--machine", default=None,
                        help="where the demo ran (default: this machine's CPU and core count)")
    parser.add_argument("--trained-commit", default=None,
                        help="the amalib commit the demo ran (it does not record one itself)")
    args = parser.parse_args(argv)

    run = Path(args.run)
    summary = json.loads((run / "summary.json").read_text())
    checkpoint = run / "train" / "checkpoint.pth"
    records = [json.loads(line) for line in
               (run / "train" / "metrics.jsonl").read_text().splitlines() if line.strip()]
    pick = lambda m: {k: m[k] for k in (*METRIC_KEYS, "n_queries", "ap") if k in m}  # noqa: E731
    provenance = {
        "name": "ama_mini",
        "command": COMMAND,
        "config_name": summary["config"],
        "seed": int(summary["seed"]),
        "epochs": int(summary["epochs"]),
        "torch_threads": int(summary["torch_threads"]),
        "machine": args.machine or f"{cpu_name()}, {os.cpu_count()} cores (CPU)",
        "wall_time_s": summary.get("wall_time_s"),
        "starting_backbone": summary["starting_backbone"]["file"],
        "before": pick(summary["before"]),
        "after": pick(summary["after"]),
        "chance": summary["chance"],
        "contents": "the teacher's backbone in float16 (no DINO head, student or optimiser); "
                    "config: the run's resolved config; metrics: its metrics.jsonl records",
        "amalib_version": amalib.__version__,
        "trained_commit": args.trained_commit or "not recorded by the demo",
        "export_commit": git_commit(),
        "export_command": EXPORT,
    }
    out = Path(args.out)
    tmp = out.with_name(out.name + ".unchecked")
    export_trained_model(checkpoint, tmp, provenance=provenance, metrics=records)
    # The float16 weights, read back as every user reads them, on the run's own benchmark.
    backbone, cfg = load_trained_backbone(tmp)
    root = ensure_generated_data(cfg["data"])
    from amalib.data.benchmarks import resolve_benchmark

    sets = build_eval_datasets(cfg, root, resolve_benchmark(root, str(cfg["benchmark"])))
    half = evaluate_backbone(backbone, sets, batch_size=cfg["data"]["eval_batch_size"],
                             progress=False, ap=cfg["eval"]["ap"])
    provenance["after_float16"] = pick(half)
    print("after (float32, the demo):", {k: round(summary["after"][k], 4) for k in METRIC_KEYS})
    print("after (float16, exported):", {k: round(half[k], 4) for k in METRIC_KEYS})
    tmp.unlink()
    if abs(half["mAP@all"] - summary["after"]["mAP@all"]) > 0.005:
        print("error: the float16 weights do not reproduce the run's mAP@all", file=sys.stderr)
        return 1
    path = export_trained_model(checkpoint, out, provenance=provenance, metrics=records)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
