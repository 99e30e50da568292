"""Time the generation of the embedded mini-benchmark with its default parameters.

Usage: ``python benchmarks/bench_generate.py [--workers 2] [--root DIR]`` — prints the wall time,
the number of images and images per second (one run; the issue's budget is <= 60 s on 2 cores).
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

from amalib.data.synthetic import generate_mini_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--root", type=Path, default=None, help="default: a temporary directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp) / "mini"
        start = time.perf_counter()
        generate_mini_benchmark(root, workers=args.workers)
        seconds = time.perf_counter() - start
        n_images = sum(f.endswith((".png", ".jpg")) for _, _, files in os.walk(root) for f in files)
    print(f"mini-benchmark (defaults), workers={args.workers}, cpus={os.cpu_count()}")
    print(f"{n_images} images in {seconds:.1f} s = {n_images / seconds:.0f} images/s")


if __name__ == "__main__":
    main()
