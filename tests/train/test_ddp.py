"""Two-process training with the gloo backend on CPU (what torchrun does on GPUs)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tiny_benchmark import tiny_overrides

pytestmark = [pytest.mark.ddp, pytest.mark.slow]


def _worker(rank: int, world: int, init_file: str, root: str, out_dir: str) -> None:
    from amalib.config import load_config
    from amalib.train.trainer import Trainer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        cfg = load_config("mini", tiny_overrides(root, **{"train.max_steps_per_epoch": 1}))
        trainer = Trainer(cfg, f"{out_dir}/run", progress=False, log=lambda _: None)
        trainer.fit()
        student = torch.cat([p.detach().flatten() for p in trainer.student.parameters()])
        teacher = torch.cat([p.detach().flatten() for p in trainer.teacher.parameters()])
        gathered = trainer.extract("sketch_train")
        torch.save({"student": student, "teacher": teacher, "features": gathered.features,
                    "valid": gathered.valid, "centre": trainer.dino_losses["photo"].center,
                    "history": trainer.history},
                   f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_stay_in_sync(tiny_root, tmp_path):
    world = 2
    mp.spawn(_worker, args=(world, str(tmp_path / "init"), str(tiny_root), str(tmp_path)),
             nprocs=world, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world))
    # DDP averaged the gradients, so both ranks took identical optimiser steps.
    assert torch.equal(r0["student"], r1["student"])
    assert torch.equal(r0["teacher"], r1["teacher"])
    assert torch.equal(r0["centre"], r1["centre"])
    # Epoch 1 clustered features gathered from both ranks and trained with every term.
    assert {"cc", "ma", "sg"} <= set(r0["history"][1]["loss"])
    # Gathered features: complete, in dataset order, equal to a single-process extraction.
    assert r0["valid"].all() and torch.equal(r0["features"], r1["features"])
    from amalib.config import load_config
    from amalib.retrieval.features import extract_features
    from amalib.train.trainer import Trainer

    cfg = load_config("mini", tiny_overrides(tiny_root))
    single = Trainer(cfg, tmp_path / "single", progress=False, log=lambda _: None)
    state = torch.load(tmp_path / "run" / "checkpoint.pth", weights_only=True)
    single.teacher.load_state_dict(state["teacher"])
    expected = extract_features(single.teacher.backbone, single.eval_sets["sketch_train"],
                                batch_size=7, progress=False)
    torch.testing.assert_close(r0["features"], expected.features, atol=1e-5, rtol=1e-4)


def _failing_rank0_worker(rank: int, world: int, init_file: str, root: str, out_dir: str) -> None:
    """Rank 0 fails in rank-0-only work; record what each rank raised instead of hanging."""
    from datetime import timedelta

    from amalib import distributed as du
    from amalib.config import load_config
    from amalib.train.trainer import Trainer

    torch.set_num_threads(1)
    # A hang would end in the group's timeout, far below pytest's patience.
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world, timeout=timedelta(seconds=60))
    seen = {}
    try:
        def fail_on_rank0(x):
            if du.rank() == 0:
                raise OSError("disk full")
            return x

        def twice(x):
            return 2 * x

        seen["ok"] = du.run_on_main_process(twice, 21)
        for case, call in {
            "helper": lambda: du.run_on_main_process(fail_on_rank0, 1),
            # The data root holds a foreign file: generating the benchmark fails on rank 0.
            "trainer": lambda: Trainer(load_config("mini", tiny_overrides(root)), f"{out_dir}/run",
                                       progress=False, log=lambda _: None),
        }.items():
            try:
                call()
                seen[case] = "no error"
            except Exception as err:
                seen[case] = f"{type(err).__name__}: {err}"
    finally:
        dist.destroy_process_group()
    torch.save(seen, f"{out_dir}/rank{rank}.pt")


def test_a_failure_on_rank0_stops_every_rank(tmp_path):
    root = tmp_path / "not_a_benchmark"
    root.mkdir()
    (root / "notes.txt").write_text("someone else's folder")
    world = 2
    mp.spawn(_failing_rank0_worker,
             args=(world, str(tmp_path / "init"), str(root), str(tmp_path)), nprocs=world,
             join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world))
    assert (r0["ok"], r1["ok"]) == (42, None)  # the result lives on rank 0 only
    assert r0["helper"] == "OSError: disk full"
    assert r1["helper"].startswith("RuntimeError: rank 0 failed in ")
    assert "OSError: disk full" in r1["helper"] and "rank 1 stops too" in r1["helper"]
    assert r0["trainer"].startswith("FileExistsError: ")
    assert r1["trainer"].startswith("RuntimeError: rank 0 failed in ensure_mini_benchmark")
    assert "holds no mini-benchmark manifest.json" in r1["trainer"]
