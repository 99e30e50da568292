"""Time the data loader's per-image work on one core: decoding against multi-crop augmentation.

Usage: ``python benchmarks/bench_augment.py [--config mini] [--root DIR] [--images 200]
[--repeats 5]`` — reads ``--images`` training photos and sketches of a benchmark root (default:
the config's ``data.root``; the embedded benchmark is generated there first when the config
says how and it is missing), then prints the median over
``--repeats`` passes of the milliseconds per image to decode (``load_rgb``) and to run each
domain's :class:`amalib.data.transforms.MultiCropTransform` with the config's crops. Divide
the images per epoch by ``workers * 1000 / ms`` for a lower bound on an epoch's loading time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from bench_backbone import median_time  # benchmarks/ is on sys.path when run as a script

from amalib.config import load_config
from amalib.data.benchmarks import read_file_list, resolve_benchmark
from amalib.data.datasets import load_rgb
from amalib.data.synthetic import ensure_mini_benchmark
from amalib.data.transforms import MultiCropTransform


def median_ms(fn, items, repeats: int) -> float:
    """Median over ``repeats`` passes of the milliseconds per item of ``fn``."""
    return median_time(lambda: [fn(item) for item in items], repeats, warmup=0) * 1e3 / len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="mini")
    parser.add_argument("--root", default=None, help="default: the config's data.root")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)  # a DataLoader worker runs on one core
    cfg = load_config(args.config, [])
    root = Path(args.root or cfg["data"]["root"])
    if cfg["data"].get("generate"):
        ensure_mini_benchmark(root, **cfg["data"]["generate"])
    spec = resolve_benchmark(root, str(cfg["benchmark"]))
    print(f"{args.config}: {root}, median of {args.repeats} passes over {args.images} images")
    for domain in ("photo", "sketch"):
        paths = [root / p for p, _ in read_file_list(root / getattr(spec, f"{domain}_train"))]
        paths = paths[: args.images]
        if not paths:
            raise SystemExit(f"no {domain} images in {root / getattr(spec, f'{domain}_train')}")
        crops = dict(cfg["data"][f"{domain}_crops"])
        transform = MultiCropTransform(domain=domain, **crops)
        images = [load_rgb(p) for p in paths]
        decode = median_ms(load_rgb, paths, args.repeats)
        augment = median_ms(transform, images, args.repeats)
        n_crops = crops["n_global"] + crops["n_local"]
        print(f"{domain:>6}: decode {decode:.2f} ms/image, multi-crop ({n_crops} crops of "
              f"{crops['global_size']}/{crops['local_size']} px) {augment:.2f} ms/image "
              f"({augment / decode:.0f}x decoding)")


if __name__ == "__main__":
    main()
