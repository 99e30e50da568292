"""A trained model's unseen-class sketch→photo metrics under each named metric convention.

The same features and the same rankings, read as each ZS-SBIR code base reads its metrics
(:data:`amalib.metrics.CONVENTIONS`, ``docs/metric_conventions.md``): how far apart the
published readings of "mAP@200" and "P@200" are on one model.

    python benchmarks/metric_conventions.py --checkpoint runs/demo/train/checkpoint.pth
"""

from __future__ import annotations

import argparse

from amalib.data.benchmarks import resolve_benchmark
from amalib.data.datasets import build_eval_sets
from amalib.data.transforms import eval_transform
from amalib.metrics import CONVENTIONS, METRIC_KEYS, evaluate_retrieval
from amalib.retrieval.evaluate import load_trained_backbone, test_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="an `amalib train`/demo checkpoint")
    args = parser.parse_args()
    backbone, cfg = load_trained_backbone(args.checkpoint)
    dcfg = cfg["data"]
    sets = build_eval_sets(dcfg["root"], resolve_benchmark(dcfg["root"], cfg["benchmark"]),
                           eval_transform(dcfg["eval_resize"], dcfg["eval_crop"],
                                          interpolation=dcfg["resize_interpolation"]))
    q, g = test_features(backbone, sets, batch_size=dcfg["eval_batch_size"], progress=False)
    q_args = (q.features[q.valid], q.labels[q.valid])
    g_args = (g.features[g.valid], g.labels[g.valid])
    print(f"{args.checkpoint}: {len(q_args[1])} sketch queries, {len(g_args[1])} photos")
    print("| convention | " + " | ".join(METRIC_KEYS) + " |")
    print("|---|" + "---|" * len(METRIC_KEYS))
    for name in CONVENTIONS:
        result = evaluate_retrieval(*q_args, *g_args, convention=name)
        print(f"| `{name}` | " + " | ".join(f"{result[k]:.4f}" for k in METRIC_KEYS) + " |")


if __name__ == "__main__":
    main()
