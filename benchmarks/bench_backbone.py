"""Backbone benchmark: one self-distillation step of the small ViT on CPU, multi-crop.

Times, per optimiser step and as the median of several runs, for ``vit_mini`` (patch 8) with 2
global crops at 64 px and ``--n-local`` local crops at 32 px:

* student forward (grouped by resolution, :class:`amalib.models.MultiCropWrapper`) + teacher
  forward on the global crops + DINO loss + backward + SGD step + EMA update (the whole step);
* the student forward + backward alone, grouped vs one backbone call per crop (the reason the
  wrapper groups crops).

    python benchmarks/bench_backbone.py
    python benchmarks/bench_backbone.py --batch 32 --n-local 8 --steps 10
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from amalib.losses.dino import DINOLoss
from amalib.models import build_student_teacher, ema_update


def median_time(fn, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def add_step_arguments(parser: argparse.ArgumentParser, *, batch: int = 16, n_local: int = 6,
                       global_size: int = 64, local_size: int = 32) -> None:
    """The multi-crop step's sizes (``--batch``, ``--n-local``, ``--global-size``,
    ``--local-size``, ``--out-dim``) and ``--threads``, with these defaults."""
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--n-local", type=int, default=n_local)
    parser.add_argument("--global-size", type=int, default=global_size)
    parser.add_argument("--local-size", type=int, default=local_size)
    parser.add_argument("--out-dim", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")


def dino_loss(student, teacher, crops, loss_fn) -> torch.Tensor:
    """The student on every crop, the teacher (no gradient) on the two global crops, the loss."""
    _, student_out = student(crops)
    with torch.no_grad():
        _, teacher_out = teacher(crops[:2])
    return loss_fn(student_out, teacher_out, epoch=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_step_arguments(parser)
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    student, teacher = build_student_teacher(
        arch="vit_mini", patch_size=8, img_size=args.global_size, out_dim=args.out_dim,
        hidden_dim=512, bottleneck_dim=128, drop_path_rate=0.1,
    )
    loss_fn = DINOLoss(args.out_dim)
    optimizer = torch.optim.SGD(
        [p for p in student.parameters() if p.requires_grad], lr=1e-4, momentum=0.9
    )
    crops = [torch.randn(args.batch, 3, args.global_size, args.global_size) for _ in range(2)]
    crops += [
        torch.randn(args.batch, 3, args.local_size, args.local_size) for _ in range(args.n_local)
    ]

    def full_step() -> None:
        loss = dino_loss(student, teacher, crops, loss_fn)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema_update(student, teacher, 0.999)

    def grouped_student() -> None:
        features, _ = student(crops)
        features.sum().backward()

    def per_crop_student() -> None:
        features = torch.cat([student.backbone(crop) for crop in crops])
        features.sum().backward()

    n_params = sum(p.numel() for p in student.backbone.parameters())
    print(
        f"vit_mini/8 ({n_params / 1e6:.2f}M backbone parameters), batch {args.batch}, "
        f"2 x {args.global_size} px + {args.n_local} x {args.local_size} px crops, "
        f"out_dim {args.out_dim}, {torch.get_num_threads()} CPU threads; "
        f"median of {args.steps} runs after {args.warmup} warm-up runs"
    )
    step = median_time(full_step, args.steps, args.warmup)
    n_images = args.batch * (2 + args.n_local)
    print(f"  full DINO step (student + teacher + loss + backward + SGD + EMA): "
          f"{step * 1e3:8.1f} ms  ({n_images / step:.0f} crops/s)")
    grouped = median_time(grouped_student, args.steps, args.warmup)
    per_crop = median_time(per_crop_student, args.steps, args.warmup)
    print(f"  student backbone fwd+bwd, grouped by resolution: {grouped * 1e3:8.1f} ms")
    print(f"  student backbone fwd+bwd, one call per crop:     {per_crop * 1e3:8.1f} ms  "
          f"(grouped is {per_crop / grouped:.2f}x faster)")


if __name__ == "__main__":
    main()
