"""Where the demo's time goes: one ``amalib demo`` run's phases, measured in one process.

Runs what ``amalib demo`` runs (config ``mini``, seed 0, the default thread count) for the
epochs asked, with timers around every phase, and prints a table:

* start-up: config, data check, the networks, the optimiser (``Trainer(...)``);
* the starting backbone's evaluation (the demo's "before");
* per epoch: k-means (teacher features of both training sets + clustering), waiting for the
  data loader (decoding and augmentation, in ``data.num_workers`` worker processes), the
  forward pass (student on every crop, teacher on the global crops), each loss term, backward,
  the optimiser step, the teacher's EMA, and the evaluation on the unseen classes.

Nothing is changed in what is computed: the timers wrap the engine's own functions
(``amalib.train.trainer.forward`` / ``ama_losses``, the loss modules, ``ema_update``, the
optimiser's ``step``), so the losses and metrics equal the demo's for the same epochs.
Backward is the step's remainder (its time minus the timed parts).

Usage (an idle machine; the figures in docs/performance.md come from this command)::

    python benchmarks/profile_demo.py --epochs 3
    python benchmarks/profile_demo.py --epochs 3 --set data.num_workers=1   # a lever
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch


class Timers:
    """Sums of seconds per phase, and per-step samples of the step's parts."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def add(self, name: str, seconds: float) -> None:
        self.total[name] += seconds
        self.calls[name] += 1

    def wrap(self, name: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - t0)

        return timed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs to run (3 covers warm-up, k-means and every term)")
    parser.add_argument("--config", default="mini")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config override (a lever to compare)")
    args = parser.parse_args(argv)

    t_start = time.perf_counter()
    from amalib.config import load_config
    from amalib.metrics import evaluate_retrieval
    from amalib.retrieval.evaluate import test_features
    from amalib.train import trainer as engine

    timers = Timers()
    cfg = load_config(args.config, ["train.seed=0", *args.overrides])
    t_imports = time.perf_counter() - t_start

    # The engine's own functions, wrapped where the trainer looks them up.
    engine.forward = timers.wrap("forward (student + teacher)", engine.forward)
    engine.ama_losses = timers.wrap("losses (all terms)", engine.ama_losses)
    engine.ema_update = timers.wrap("EMA update", engine.ema_update)

    t0 = time.perf_counter()
    run = Path(tempfile.mkdtemp(prefix="profile_demo_"))
    trainer = engine.Trainer(cfg, run, progress=False, log=lambda _line: None)
    timers.add("start-up (Trainer)", time.perf_counter() - t0)
    for name, module in [*((f"loss: L_SD {d}", m) for d, m in trainer.dino_losses.items()),
                         ("loss: L_CC", trainer.cc_loss), ("loss: L_MA", trainer.ma_loss),
                         ("loss: L_SG", trainer.sg_loss)]:
        module.forward = timers.wrap(name, module.forward)
    trainer.optimizer.step = timers.wrap("optimiser step", trainer.optimizer.step)
    trainer.cluster = timers.wrap("k-means (features + clustering)", trainer.cluster)
    trainer.evaluate = timers.wrap("evaluation (unseen classes)", trainer.evaluate)

    # The demo's "before": the starting backbone on the unseen classes.
    t0 = time.perf_counter()
    dcfg = cfg["data"]
    q, g = test_features(trainer.teacher.backbone, trainer.eval_sets,
                         batch_size=dcfg["eval_batch_size"], device=trainer.device,
                         num_workers=int(dcfg["num_workers"]), progress=False)
    evaluate_retrieval(q.features[q.valid], q.labels[q.valid], g.features[g.valid],
                       g.labels[g.valid], ap=cfg["eval"]["ap"])
    timers.add("starting backbone evaluation", time.perf_counter() - t0)

    # Waiting for the data loader: the time between asking for a batch and getting it.
    batches = trainer.batches

    def timed_batches(epoch, rng_at=None):
        it = batches(epoch, rng_at)
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            timers.add("data loading (wait)", time.perf_counter() - t0)
            yield batch

    trainer.batches = timed_batches
    step = trainer.train_step
    step_times: list[float] = []

    def timed_step(*a, **k):
        t0 = time.perf_counter()
        out = step(*a, **k)
        step_times.append(time.perf_counter() - t0)
        timers.add("train step (all of it)", step_times[-1])
        return out

    trainer.train_step = timed_step
    epoch_times = []
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        record = trainer.train_one_epoch(epoch)
        epoch_times.append(time.perf_counter() - t0)
        print(f"epoch {epoch}: {epoch_times[-1]:.1f} s, mAP@all "
              f"{record['eval']['mAP@all']:.4f}", file=sys.stderr)
    wall = time.perf_counter() - t_start

    inside = ["forward (student + teacher)", "losses (all terms)", "optimiser step", "EMA update"]
    backward = timers.total["train step (all of it)"] - sum(timers.total[k] for k in inside)
    rows = [
        ("imports + config", t_imports, 1),
        ("start-up (Trainer)", timers.total["start-up (Trainer)"], 1),
        ("starting backbone evaluation", timers.total["starting backbone evaluation"], 1),
        ("k-means (features + clustering)", timers.total["k-means (features + clustering)"],
         timers.calls["k-means (features + clustering)"]),
        ("data loading (wait)", timers.total["data loading (wait)"],
         timers.calls["data loading (wait)"]),
        ("forward (student + teacher)", timers.total["forward (student + teacher)"],
         timers.calls["forward (student + teacher)"]),
        *((f"  {k}", timers.total[k], timers.calls[k]) for k in sorted(timers.total)
          if k.startswith("loss:")),
        ("losses (all terms)", timers.total["losses (all terms)"],
         timers.calls["losses (all terms)"]),
        ("backward + clipping (remainder)", backward, len(step_times)),
        ("optimiser step", timers.total["optimiser step"], timers.calls["optimiser step"]),
        ("EMA update", timers.total["EMA update"], timers.calls["EMA update"]),
        ("evaluation (unseen classes)", timers.total["evaluation (unseen classes)"],
         timers.calls["evaluation (unseen classes)"]),
    ]
    accounted = sum(s for name, s, _ in rows if not name.startswith("  "))
    print(f"profile of `amalib demo` ({args.config}, seed 0, {args.epochs} epoch(s), "
          f"{torch.get_num_threads()} threads, data.num_workers={dcfg['num_workers']}, "
          f"overrides {args.overrides or 'none'})")
    print(f"{'phase':<36}{'seconds':>9}{'share':>8}{'calls':>7}{'ms/call':>9}")
    for name, seconds, calls in rows:
        print(f"{name:<36}{seconds:>9.1f}{seconds / wall:>8.1%}{calls:>7}"
              f"{1000 * seconds / max(calls, 1):>9.1f}")
    print(f"{'other (checkpoints, logging)':<36}{wall - accounted:>9.1f}"
          f"{(wall - accounted) / wall:>8.1%}")
    print(f"{'wall':<36}{wall:>9.1f}")
    print(f"median train step {1000 * statistics.median(step_times):.0f} ms over "
          f"{len(step_times)} steps; epochs " + ", ".join(f"{t:.1f}" for t in epoch_times) + " s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
