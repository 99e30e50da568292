"""Training-step benchmark: the fused AMA step against the plain reference step (amalib issue 8).

Times one full optimiser step — forward, every loss term, backward, gradient clipping, optimiser
step and EMA update of the teacher — of :class:`amalib.train.trainer.Trainer` two ways, in the
same process, on the same inputs, with steps of the two paths interleaved (so that load from
other processes hits both alike):

* **fused**: ``Trainer.train_step`` (one teacher forward on both domains' global crops, one
  student forward where sketches and photos of one resolution share a backbone call; bf16
  autocast on CUDA);
* **reference**: ``tests/reference_step.py``'s ``reference_train_step`` (per domain and per
  crop backbone + head calls in float32, DINO's loop over crop pairs, each term separately; the
  same backward/clip/optimiser/EMA code).

Prints the median step time over ``--steps`` timed steps after ``--warmup`` untimed ones, the
images/s (``2 * batch`` images per step, every crop of an image counted once), the speed-up, the
achieved FLOP rate and, on CUDA, the peak memory and the model FLOPs utilisation (MFU) against
``--peak-tflops``. Inputs are random tensors of the configured crop shapes and the prototypes are
random (the cost of CC/MA/SG does not depend on their quality); the data pipeline is not timed.
The epoch is the first one at which every loss term has a non-zero weight.

FLOP count (see :func:`step_flops`): for a ViT of width ``d``, depth ``L``, patch ``p`` and an
image of ``n_p`` patches (``n = n_p + 1`` tokens) the forward is
``2 * n_p * 3p^2 * d`` (patch embedding) ``+ L * (24 * n * d^2 + 4 * n^2 * d)`` (per block: qkv,
projection and the 4x MLP are ``2 * n * 12 d^2 = 2 * n * params_block``; QK^T and AV are
``2 * n^2 * d`` each), plus the DINO head ``2 * (d*h + h*h + h*b + b*K)`` per crop. Training the
student costs 3x its forward (backward = 2x forward, i.e. the usual ``6 * params * tokens`` plus
``12 * L * n^2 * d`` for attention); the teacher costs one forward of the global crops. Norms,
activations, softmaxes, losses and the optimiser are not counted (this is MFU, not HFU).

    # the embedded mini config on this CPU (batch 32 + 32, crops 2 x 48 px + 4 x 24 px)
    python benchmarks/bench_train_step.py
    # ViT-B/16, 2 x 224 + 8 x 96 crops, batch 32 + 32, K = 65536 on a GPU (MFU vs H100 bf16)
    python benchmarks/bench_train_step.py --device cuda --arch vit_base --patch 16 \\
        --global-size 224 --local-size 96 --n-local 8 --batch 32 --out-dim 65536
    # the same arguments on a CPU run at --cpu-batch images per domain (reduced size)
    # --profile N: after timing, the top operators of N fused steps (torch.profiler)
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
#: Options of the fused step that ``--variants`` times beside it (see :func:`build_trainer`).
VARIANTS = ("fused-optim", "compile", "cpu-bf16")


# ----------------------------------------------------------------------------- FLOPs
def vit_forward_flops(*, embed_dim: int, depth: int, patch: int, size: int) -> float:
    """Matmul FLOPs of one ViT forward of one ``size`` x ``size`` image (CLS token included)."""
    n_patches = (size // patch) ** 2
    n = n_patches + 1
    embed = 2 * n_patches * 3 * patch * patch * embed_dim
    per_block = 24 * n * embed_dim**2 + 4 * n * n * embed_dim
    return float(embed + depth * per_block)


def head_forward_flops(*, embed_dim: int, hidden: int, bottleneck: int, out_dim: int) -> float:
    """Matmul FLOPs of the DINO head (3-layer MLP + weight-normalised last layer) per crop."""
    return float(2 * (embed_dim * hidden + hidden * hidden + hidden * bottleneck
                      + bottleneck * out_dim))


def step_flops(cfg: dict, batch: int) -> float:
    """Model FLOPs of one AMA step: student fwd+bwd (3x fwd) on all crops, teacher fwd on globals.

    Counts both domains (``2 * batch`` images). See the module docstring for the formula.
    """
    from amalib.models.vit import vit_preset

    m = cfg["model"]
    preset = vit_preset(m["arch"])
    crops = cfg["data"]["photo_crops"]
    head = head_forward_flops(embed_dim=preset.embed_dim, hidden=m["hidden_dim"],
                              bottleneck=m["bottleneck_dim"], out_dim=m["out_dim"])

    def fwd(size: int) -> float:
        return vit_forward_flops(embed_dim=preset.embed_dim, depth=preset.depth,
                                 patch=m["patch_size"], size=size) + head

    glob = crops["n_global"] * fwd(crops["global_size"])
    loc = crops["n_local"] * fwd(crops["local_size"])
    return 2 * batch * (3 * (glob + loc) + glob)


# ----------------------------------------------------------------------------- setup
def data_root(path: str | None) -> Path:
    """The mini benchmark (generated if missing); only its list sizes matter here."""
    return Path(path) if path else REPO / "data" / "mini"


def bench_config(args) -> dict:
    """The config of the run: ``--config`` with the model and crop flags applied."""
    from amalib.config import load_config

    base = load_config(args.config)
    m, crops = base["model"], dict(base["data"]["photo_crops"])
    arch = args.arch or m["arch"]
    same_arch = arch == m["arch"]  # another architecture gets DINO's head widths by default
    crops.update({k: v for k, v in {
        "global_size": args.global_size, "local_size": args.local_size,
        "n_global": args.n_global, "n_local": args.n_local}.items() if v is not None})
    crop_yaml = "{" + ", ".join(f"{k}: {v}" for k, v in crops.items()) + "}"
    overrides = {
        "data.root": str(data_root(args.data_root)), "data.num_workers": 0,
        "data.batch_size": args.batch, "data.sketch_crops": crop_yaml,
        "data.photo_crops": crop_yaml,
        "model.pretrained": "none", "model.arch": arch,
        "model.patch_size": args.patch or m["patch_size"],
        "model.img_size": crops["global_size"],
        "model.out_dim": args.out_dim or m["out_dim"],
        "model.hidden_dim": args.hidden_dim or (m["hidden_dim"] if same_arch else 2048),
        "model.bottleneck_dim": args.bottleneck_dim or (m["bottleneck_dim"] if same_arch else 256),
        "train.compile": bool(args.compile),
    }
    if args.amp is not None:
        overrides["train.amp"] = args.amp
    cfg = load_config(args.config, [f"{k}={v}" for k, v in overrides.items()] + args.set)
    if (data_root(args.data_root) / "manifest.json").is_file():
        # Use the tree as it is; never regenerate it under a training job that reads it.
        cfg["data"]["generate"] = None
    return cfg


def build_trainer(args, cfg: dict, *, fused_optim: bool = False, compile: bool = False,
                  cpu_bf16: bool = False):
    """A Trainer on ``cfg`` (seeded, so every call builds the same networks).

    ``fused_optim`` swaps in the fused AdamW/SGD kernel on the CPU (the trainer uses it on CUDA
    only); ``compile`` sets ``train.compile`` (``torch.compile`` of the student); ``cpu_bf16``
    turns on the trainer's bf16 autocast on the CPU too (it is CUDA-only in the trainer).
    """
    import copy

    from amalib.train.trainer import Trainer

    cfg = copy.deepcopy(cfg)
    cfg["train"]["compile"] = bool(compile or cfg["train"].get("compile"))
    run_dir = tempfile.mkdtemp(prefix="bench_train_step_")
    torch.manual_seed(0)
    trainer = Trainer(cfg, run_dir, device=args.device, progress=False, log=lambda _: None)
    if fused_optim and trainer.device.type == "cpu":
        opt = trainer.optimizer
        groups = [{k: v for k, v in g.items() if k not in ("fused", "foreach")}
                  for g in opt.param_groups]
        trainer.optimizer = type(opt)(groups, lr=opt.defaults["lr"], fused=True)
        assert all(g["fused"] for g in trainer.optimizer.param_groups)
    if cpu_bf16 and trainer.device.type == "cpu":
        trainer.use_amp, trainer.amp_dtype = True, torch.bfloat16
    trainer.student.train()
    return trainer


def first_full_epoch(trainer) -> int:
    """The first epoch at which every term has a non-zero weight (else the last epoch)."""
    for epoch in range(trainer.epochs):
        if all(w > 0 for w in trainer.schedule.weights(epoch).values()):
            return epoch
    return trainer.epochs - 1


def random_clusters(trainer, seed: int = 0) -> None:
    """Random prototypes and assignments at the configured granularities (cost, not quality)."""
    from amalib.clustering import ClusterResult

    gen = torch.Generator().manual_seed(seed)
    dim = trainer.student.backbone.embed_dim
    for d in trainer.domains:
        n = len(trainer.train_sets[d])
        results = []
        for k in trainer.cfg["loss"]["cluster"]["granularities"]:
            k = min(int(k), n)
            cents = F.normalize(torch.randn(k, dim, generator=gen), dim=1)
            assign = torch.randint(0, k, (n,), generator=gen)
            results.append(ClusterResult(cents, assign, k, 0.0))
        trainer.set_clusters(d, results)


def random_batch(trainer, cfg: dict, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    crops_cfg = cfg["data"]["photo_crops"]
    b = int(cfg["data"]["batch_size"])
    sizes = [crops_cfg["global_size"]] * crops_cfg["n_global"] + \
        [crops_cfg["local_size"]] * crops_cfg["n_local"]
    batch = {}
    for d in trainer.domains:
        crops = [torch.randn(b, 3, s, s, generator=gen) for s in sizes]
        if trainer.device.type == "cuda":
            crops = [c.pin_memory() for c in crops]
        idx = torch.randperm(len(trainer.train_sets[d]), generator=gen)[:b]
        batch[d] = (crops, idx)
    return batch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--config", default="mini")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--arch", default=None, help="ViT preset (default: the config's)")
    parser.add_argument("--patch", type=int, default=None)
    parser.add_argument("--global-size", type=int, default=None)
    parser.add_argument("--local-size", type=int, default=None)
    parser.add_argument("--n-global", type=int, default=None)
    parser.add_argument("--n-local", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None, help="images per domain and step")
    parser.add_argument("--cpu-batch", type=int, default=2,
                        help="on a CPU, images per domain when the step is larger than "
                             "--cpu-max-gflop (reduced size)")
    parser.add_argument("--cpu-max-gflop", type=float, default=2000.0)
    parser.add_argument("--out-dim", type=int, default=None)
    parser.add_argument("--hidden-dim", type=int, default=None)
    parser.add_argument("--bottleneck-dim", type=int, default=None)
    parser.add_argument("--amp", default=None, help="train.amp (bf16, fp16, none); CUDA only")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="peak dense TFLOP/s of the device for MFU (H100 SXM bf16: 989)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--compile", action="store_true", help="train.compile=true (fused only)")
    parser.add_argument("--fused-optim", action="store_true",
                        help="on CPU too, the fused AdamW/SGD kernel (CUDA always uses it)")
    parser.add_argument("--no-reference", action="store_true", help="time the fused step only")
    parser.add_argument("--variants", default="",
                        help="comma-separated extra fused paths timed in the same loop, each "
                             "with its own Trainer: " + ", ".join(VARIANTS))
    parser.add_argument("--data-root", default=None, help="mini benchmark folder (data/mini)")
    parser.add_argument("--set", action="append", default=[], help="extra config override")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="after timing, profile N fused steps and print the top operators")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"

    from amalib.config import load_config

    if args.batch is None:
        args.batch = int(load_config(args.config)["data"]["batch_size"])
    reduced = ""
    cfg = bench_config(args)
    if args.device == "cpu":
        gflop = step_flops(cfg, args.batch) / 1e9
        if gflop > args.cpu_max_gflop and args.batch > args.cpu_batch:
            reduced = (f" (REDUCED on CPU: batch {args.cpu_batch} + {args.cpu_batch} instead of "
                       f"{args.batch} + {args.batch}, {gflop:.0f} GFLOP per full step)")
            args.batch = args.cpu_batch
            cfg = bench_config(args)

    # The plain reference step lives with the tests (the package has one step).
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from reference_step import reference_train_step

    trainer = build_trainer(args, cfg, fused_optim=args.fused_optim, compile=args.compile)
    device = trainer.device
    epoch = first_full_epoch(trainer)
    global_step = min(epoch * trainer.steps_per_epoch, len(trainer.lr_schedule) - 1)
    batches = [random_batch(trainer, cfg, seed) for seed in range(2)]
    trainers = {"fused": trainer}
    paths = {"fused": trainer.train_step}
    if not args.no_reference:
        # Its own Trainer (same seed, same weights), so that the two paths do not share
        # optimiser state and a compiled student never runs the reference.
        trainers["reference"] = build_trainer(args, cfg, fused_optim=args.fused_optim)
        paths["reference"] = functools.partial(reference_train_step, trainers["reference"])
    for v in [v for v in args.variants.split(",") if v]:
        if v not in VARIANTS:
            parser.error(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
        name = f"fused+{v}"
        trainers[name] = build_trainer(
            args, cfg, fused_optim=args.fused_optim or v == "fused-optim",
            compile=args.compile or v == "compile", cpu_bf16=v == "cpu-bf16")
        paths[name] = trainers[name].train_step
    if trainer.schedule.needs_clustering(epoch):
        for t in trainers.values():
            random_clusters(t)
    times = {name: [] for name in paths}
    peak, transient = dict.fromkeys(paths, 0), dict.fromkeys(paths, 0)
    crops = cfg["data"]["photo_crops"]
    print(f"device {device} ({_device_name(device)}), torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}; fused path: autocast "
          f"{str(trainer.amp_dtype).replace('torch.', '') if trainer.use_amp else 'off'}"
          f"{', compiled' if args.compile else ''}"
          f"{', fused optimiser' if args.fused_optim or device.type == 'cuda' else ''}; "
          "reference: float32")
    print(f"{cfg['model']['arch']}/{cfg['model']['patch_size']}, K={cfg['model']['out_dim']}, "
          f"batch {args.batch} + {args.batch}, crops {crops['n_global']} x {crops['global_size']}"
          f" + {crops['n_local']} x {crops['local_size']} px, epoch {epoch} "
          f"(weights {trainer.schedule.weights(epoch)}){reduced}")
    for i in range(args.warmup + args.steps):
        for name, step in paths.items():
            batch = batches[i % len(batches)]
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                resident = torch.cuda.memory_allocated(device)
            sync(device)
            t0 = time.perf_counter()
            out = step(batch, epoch, global_step)
            sync(device)
            if isinstance(out, tuple):  # Trainer.train_step: (losses, filter statistics)
                out = out[0]
            elapsed = time.perf_counter() - t0
            if i >= args.warmup:
                times[name].append(elapsed)
                if device.type == "cuda":
                    top = torch.cuda.max_memory_allocated(device)
                    peak[name] = max(peak[name], top)
                    transient[name] = max(transient[name], top - resident)
            if i == 0:
                print(f"  first-step losses ({name}): "
                      + ", ".join(f"{k}={float(v):.4f}" for k, v in out.items()))

    flops = step_flops(cfg, args.batch)
    results = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        tflops = flops / med / 1e12
        line = (f"[{name:19s}] median {1e3 * med:8.1f} ms/step over {len(ts)} steps "
                f"(min {1e3 * min(ts):.1f}, max {1e3 * max(ts):.1f}), "
                f"{2 * args.batch / med:8.1f} images/s, {tflops * 1e3:.1f} GFLOP/s")
        if device.type == "cuda":
            line += (f", peak memory {peak[name] / 2**30:.2f} GiB (of which the step itself "
                     f"{transient[name] / 2**30:.2f} GiB; the rest is the resident weights and "
                     f"optimiser states of the {len(trainers)} trainer(s) in this process), "
                     f"MFU {100 * tflops / args.peak_tflops:.1f}% of {args.peak_tflops:g} TFLOP/s")
        print(line)
        results[name] = med
    print(f"  model FLOPs per step: {flops / 1e9:.1f} GFLOP (student 3x fwd on all crops + "
          "teacher fwd on the global crops, both domains)")
    if "reference" in results:
        paired = statistics.median(r / f for r, f in zip(times["reference"], times["fused"]))
        print(f"  speed-up fused vs reference: {results['reference'] / results['fused']:.2f}x "
              f"(ratio of medians), {paired:.2f}x (median of per-iteration ratios)")
        results["speedup"] = results["reference"] / results["fused"]
        results["speedup_paired"] = paired
        for name in [n for n in times if n.startswith("fused+")]:
            print(f"  speed-up {name} vs reference: {results['reference'] / results[name]:.2f}x")
    if args.profile:
        profile_steps(paths["fused"], batches, epoch, global_step, device, args.profile)
    used = argv if argv is not None else sys.argv[1:]
    print("  command: python " + " ".join([sys.argv[0], *used]))
    return results


def profile_steps(step, batches, epoch: int, global_step: int, device: torch.device,
                  n_steps: int) -> None:
    """Top operators of ``n_steps`` fused steps by device (CUDA) or CPU self time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sync(device)
    with profile(activities=activities) as prof:
        for i in range(n_steps):
            step(batches[i % len(batches)], epoch, global_step)
        sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"  profile of {n_steps} fused steps, top operators by {key}:")
    print(prof.key_averages().table(sort_by=key, row_limit=25, max_name_column_width=60))


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
