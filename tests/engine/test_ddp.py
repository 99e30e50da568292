"""Two-process training with the gloo backend on CPU (what torchrun does on GPUs)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tiny_benchmark import tiny_overrides

pytestmark = [pytest.mark.ddp, pytest.mark.slow]


def _worker(rank: int, world: int, init_file: str, root: str, out_dir: str) -> None:
    from amalib.engine.config import load_config
    from amalib.engine.trainer import Trainer

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
    from amalib.engine.config import load_config
    from amalib.engine.features import extract_features
    from amalib.engine.trainer import Trainer

    cfg = load_config("mini", tiny_overrides(tiny_root))
    single = Trainer(cfg, tmp_path / "single", progress=False, log=lambda _: None)
    state = torch.load(tmp_path / "run" / "checkpoint.pth", weights_only=True)
    single.teacher.load_state_dict(state["teacher"])
    expected = extract_features(single.teacher.backbone, single.eval_sets["sketch_train"],
                                batch_size=7, progress=False)
    torch.testing.assert_close(r0["features"], expected.features, atol=1e-5, rtol=1e-4)
