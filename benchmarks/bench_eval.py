"""Evaluation benchmark: feature-extraction throughput of the teacher backbone (amalib issue 8).

Prints images/s of the teacher backbone in inference mode (bf16 autocast on CUDA, as
:func:`amalib.retrieval.features.extract_features` runs it):

1. **mini, model only**: the config's ViT (``vit_mini``/8 for ``mini``) on random images at the
   evaluation crop size, ``eval_batch_size`` images per call, median over batches;
2. **mini, end to end**: :func:`amalib.retrieval.features.extract_features` over the mini
   benchmark's unseen-class photo gallery (PNG decoding, the evaluation transform, the
   DataLoader and the forward), when the generated tree exists under ``--data-root``;
3. **ViT-B/16 at 224 px, model only**: ``--base-batches`` batches of ``--base-batch`` random
   images, and the extraction time this implies for QuickDraw's 92,291 + 54,151 test images;
4. with ``--quickdraw``: the QuickDraw-sized metric timing of ``benchmarks/bench_metrics.py``
   (92,291 queries x 54,151 gallery, 768-d), imported from there, on the CPU; on CUDA also
   :func:`amalib.metrics.evaluate_retrieval` on the GPU with the same synthetic features.

Weights are random (throughput does not depend on them).

    python benchmarks/bench_eval.py                     # CPU: 1-3 (ViT-B: 2 batches of 16)
    python benchmarks/bench_eval.py --quickdraw         # + the QuickDraw-sized metrics
    python benchmarks/bench_eval.py --device cuda --base-batch 256 --base-batches 10 --quickdraw
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
QUICKDRAW_TEST_IMAGES = 92_291 + 54_151  # sketch queries + photo gallery (foundation issue)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def backbone_throughput(backbone, *, size: int, batch: int, n_batches: int, warmup: int,
                        device: torch.device, amp_dtype=torch.bfloat16) -> tuple[float, float]:
    """Median seconds per batch and images/s of ``backbone`` on random ``(batch, 3, size, size)``.

    The input lives on ``device`` already (no host-to-device copy is timed).
    """
    backbone.eval().to(device)
    images = torch.randn(batch, 3, size, size, device=device)
    use_amp = device.type == "cuda" and amp_dtype is not None
    times = []
    for i in range(warmup + n_batches):
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            out = backbone(images)
        torch.nn.functional.normalize(out.float(), dim=1)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return med, batch / med


def end_to_end(backbone, cfg: dict, root: Path, *, device: torch.device, workers: int) -> None:
    from amalib.data.benchmarks import resolve_benchmark
    from amalib.data.datasets import build_eval_sets
    from amalib.data.transforms import eval_transform
    from amalib.retrieval.features import extract_features

    dcfg = cfg["data"]
    spec = resolve_benchmark(root, str(cfg["benchmark"]))
    sets = build_eval_sets(root, spec, eval_transform(dcfg["eval_resize"], dcfg["eval_crop"]))
    ds = sets["photo_test"]
    kwargs = dict(batch_size=int(dcfg["eval_batch_size"]), device=device, num_workers=workers,
                  amp_dtype=torch.bfloat16, progress=False)
    extract_features(backbone, torch.utils.data.Subset(ds, range(min(64, len(ds)))), **kwargs)
    t0 = time.perf_counter()
    feats = extract_features(backbone, ds, **kwargs)
    elapsed = time.perf_counter() - t0
    print(f"[mini, end to end] extract_features over photo_test ({len(feats)} images, "
          f"{dcfg['eval_crop']} px, {workers} workers): {elapsed:.2f} s, "
          f"{len(feats) / elapsed:.0f} images/s")


def quickdraw_metrics(device: torch.device) -> None:
    """bench_metrics' QuickDraw-sized timing (CPU), and on CUDA the same sizes on the GPU."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_metrics

    argv = sys.argv
    # bench_metrics always runs its per-query comparison first: keep it short (200 queries
    # against its default QuickDraw-sized gallery, once), then the QuickDraw-sized timing.
    sys.argv = [bench_metrics.__file__, "--queries", "200", "--repeats", "1"]
    try:
        bench_metrics.main()
    finally:
        sys.argv = argv
    if device.type != "cuda":
        return
    import numpy as np

    from amalib.metrics import evaluate_retrieval

    rng = np.random.default_rng(0)
    dim, n_classes = 768, 30
    centres = rng.standard_normal((n_classes, dim), dtype=np.float32) * 0.15
    qf, ql = bench_metrics.clustered_features(rng, 92_291, dim, n_classes, centres)
    gf, gl = bench_metrics.clustered_features(rng, 54_151, dim, n_classes, centres)
    qf, gf = torch.from_numpy(qf).to(device), torch.from_numpy(gf).to(device)
    evaluate_retrieval(qf[:1000], ql[:1000], gf, gl, device=device)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    result = evaluate_retrieval(qf, ql, gf, gl, device=device)
    sync(device)
    print(f"[QuickDraw-sized, {device}] 92291 x 54151, dim 768: {time.perf_counter() - t0:.1f} s "
          f"(features already on the device), mAP@all={result['mAP@all']:.4f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--config", default="mini")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--batches", type=int, default=5, help="timed batches, mini model only")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--base-batch", type=int, default=None,
                        help="ViT-B/16 images per call (default 16 on CPU, 256 on CUDA)")
    parser.add_argument("--base-batches", type=int, default=None,
                        help="ViT-B/16 timed batches (default 2 on CPU, 10 on CUDA); 0 skips")
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader workers of the end-to-end run (default: the config's)")
    parser.add_argument("--data-root", default=None, help="mini benchmark folder (data/mini)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--quickdraw", action="store_true",
                        help="also time the QuickDraw-sized metrics (bench_metrics.py)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"

    from amalib.config import load_config
    from amalib.models.vit import create_vit

    cfg = load_config(args.config)
    m, dcfg = cfg["model"], cfg["data"]
    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(f"device {device} ({name}), torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}, {'bf16 autocast' if cuda else 'float32'}")

    torch.manual_seed(0)
    backbone = create_vit(m["arch"], patch_size=m["patch_size"], img_size=m["img_size"],
                          stem=m.get("stem", "patch"))
    batch = int(dcfg["eval_batch_size"])
    med, ips = backbone_throughput(backbone, size=int(dcfg["eval_crop"]), batch=batch,
                                   n_batches=args.batches, warmup=args.warmup, device=device)
    print(f"[{args.config}, model only] {m['arch']}/{m['patch_size']} at {dcfg['eval_crop']} px, "
          f"batch {batch}: median {1e3 * med:.1f} ms/batch over {args.batches}, {ips:.0f} images/s")

    root = Path(args.data_root) if args.data_root else REPO / "data" / "mini"
    if (root / "manifest.json").is_file() and cfg["benchmark"] == "mini":
        workers = int(dcfg["num_workers"]) if args.workers is None else args.workers
        end_to_end(backbone, cfg, root, device=device, workers=workers)
    else:
        print(f"[{args.config}, end to end] skipped: no generated mini benchmark under {root} "
              "(run `python -m amalib demo` or pass --data-root)")

    n_base = args.base_batches if args.base_batches is not None else (10 if cuda else 2)
    if n_base > 0:
        base_batch = args.base_batch or (256 if cuda else 16)
        base = create_vit("vit_base", patch_size=16, img_size=224)
        med, ips = backbone_throughput(base, size=224, batch=base_batch, n_batches=n_base,
                                       warmup=1, device=device)
        print(f"[vit_base/16, model only] 224 px, batch {base_batch}: median {1e3 * med:.0f} "
              f"ms/batch over {n_base}, {ips:.1f} images/s -> QuickDraw's "
              f"{QUICKDRAW_TEST_IMAGES} test images in ~{QUICKDRAW_TEST_IMAGES / ips:.0f} s "
              "(forward only)")
        del base

    if args.quickdraw:
        quickdraw_metrics(device)


if __name__ == "__main__":
    main()
