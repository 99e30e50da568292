"""Two exact levers of the demo (issue 27): the stem's max pooling and the head warm-up's backward.

Prints, as medians of several runs in one process, each lever against the path it replaced:

* the convolutional stem's 2x2 max pooling where no gradient is needed, at the shapes of a mini
  training step: PyTorch's CPU kernel (``nn.MaxPool2d(2)``) vs :class:`amalib.models.vit.MaxPool2x2`
  (the maximum of the window's four strided quarters), and the whole ``vit_mini/8`` forward
  without a gradient (the teacher's forward, feature extraction) with each;
* one head warm-up step (student on every crop, teacher on the global crops, the DINO loss,
  backward, AdamW): the backbone's gradients computed and dropped (the reference, as under DDP)
  vs the backbone frozen for the forward (:func:`amalib.train.trainer.frozen_parameters`), so
  backward stops at the head.

Each pair must agree bit for bit, and the script says whether it does.

    python benchmarks/bench_stem.py              # mini's sizes: batch 32 + 32, 2 x 48 + 4 x 24 px
    python benchmarks/bench_stem.py --threads 2 --runs 9
"""

from __future__ import annotations

import argparse
from contextlib import nullcontext

import torch
from bench_backbone import add_step_arguments, dino_loss, median_time  # benchmarks/ is on sys.path
from torch import nn

from amalib.losses.dino import DINOLoss
from amalib.models import build_student_teacher
from amalib.models.vit import MaxPool2x2
from amalib.train.trainer import frozen_parameters


def median_ms(fn, runs: int) -> float:
    return median_time(fn, runs, warmup=1) * 1e3


def use_pool(model: nn.Module, fast: bool) -> None:
    """Swap every stem pooling of ``model`` for the fast one or the kernel, in place."""
    for module in model.modules():
        for name, child in module.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(module, name, MaxPool2x2() if fast else nn.MaxPool2d(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_step_arguments(parser, batch=32, n_local=4, global_size=48, local_size=24)  # mini's
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n = 2 * args.batch  # both domains in one backbone call, as the engine
    print(f"vit_mini/8, stem cnn, {n} images a call (batch {args.batch} + {args.batch}), "
          f"2 x {args.global_size} + {args.n_local} x {args.local_size} px, "
          f"{torch.get_num_threads()} CPU threads; median of {args.runs} runs")

    torch.manual_seed(0)
    print("[1: 2x2 max pooling without a gradient, the stem's first stage]")
    for size, count in ((args.global_size, 2 * n), (args.local_size, args.n_local * n)):
        x = torch.relu(torch.randn(count, 32, size, size))
        with torch.no_grad():
            kernel = median_ms(lambda x=x: nn.functional.max_pool2d(x, 2), args.runs)
            fast = median_ms(lambda x=x: MaxPool2x2()(x), args.runs)
            same = torch.equal(MaxPool2x2()(x), nn.functional.max_pool2d(x, 2))
        print(f"  {count} x 32 x {size} x {size}: kernel {kernel:7.2f} ms, four quarters "
              f"{fast:7.2f} ms ({kernel / fast:.1f}x), equal: {same}")

    student, teacher = build_student_teacher(
        arch="vit_mini", patch_size=8, img_size=args.global_size, out_dim=args.out_dim,
        hidden_dim=512, bottleneck_dim=128, drop_path_rate=0.1, stem="cnn",
    )
    images = torch.rand(2 * n, 3, args.global_size, args.global_size)
    backbone = teacher.backbone.eval()
    with torch.no_grad():
        use_pool(backbone, fast=False)
        kernel_ms = median_ms(lambda: backbone(images), args.runs)
        kernel_out = backbone(images)
        use_pool(backbone, fast=True)
        fast_ms = median_ms(lambda: backbone(images), args.runs)
        same = torch.equal(backbone(images), kernel_out)
    print(f"  the whole forward of {2 * n} global crops: kernel {kernel_ms:7.1f} ms, four "
          f"quarters {fast_ms:7.1f} ms ({kernel_ms / fast_ms:.2f}x), features equal: {same}")

    print("[2: one head warm-up step, backbone frozen]")
    crops = [torch.rand(n, 3, args.global_size, args.global_size) for _ in range(2)]
    crops += [torch.rand(n, 3, args.local_size, args.local_size) for _ in range(args.n_local)]
    start = {k: v.clone() for k, v in student.state_dict().items()}
    results = {}
    for skip in (False, True):
        student.load_state_dict(start)
        torch.manual_seed(0)
        loss_fn = DINOLoss(args.out_dim)
        optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad],
                                      lr=1e-4)

        def step(skip=skip, loss_fn=loss_fn, optimizer=optimizer) -> None:
            with frozen_parameters(student.backbone) if skip else nullcontext():
                loss = dino_loss(student, teacher, crops, loss_fn)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for p in student.backbone.parameters():
                p.grad = None
            optimizer.step()

        ms = median_ms(step, args.runs)
        results[skip] = (ms, {k: v.clone() for k, v in student.state_dict().items()})
    (ref_ms, ref_state), (skip_ms, skip_state) = results[False], results[True]
    same = all(torch.equal(ref_state[k], skip_state[k]) for k in ref_state)
    print(f"  gradients computed and dropped {ref_ms:7.1f} ms, backward stops at the head "
          f"{skip_ms:7.1f} ms ({ref_ms / skip_ms:.2f}x), weights equal after "
          f"{args.runs + 1} steps: {same}")


if __name__ == "__main__":
    main()
