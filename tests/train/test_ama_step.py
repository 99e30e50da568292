"""The plain-code AMA step (``reference_step.ama_step``, shown in notebook 05) equals the engine's
``Trainer.train_step`` on one batch: same loss terms, same student and teacher afterwards.

The mini config as it is — convolutional (batch-norm) stem, drop-path on — scaled down to the
tiny benchmark; both steps start from the same state and the same random stream.
"""

from __future__ import annotations

import copy

import pytest
import torch
from reference_step import ama_step
from tiny_benchmark import tiny_overrides

from amalib.config import load_config
from amalib.train.trainer import Trainer


@pytest.fixture(scope="module")
def trainer(tiny_root, tmp_path_factory):
    cfg = load_config("mini", tiny_overrides(tiny_root, **{"model.drop_path_rate": 0.1}))
    assert cfg["model"]["stem"] == "cnn" and cfg["train"]["clip_grad"]
    t = Trainer(cfg, tmp_path_factory.mktemp("ama_step"), progress=False, log=lambda _: None)
    t.cluster(1)  # prototypes for CC and MA (every term is on from epoch 1)
    return t


def _snapshot(trainer) -> dict:
    return {
        "student": copy.deepcopy(trainer.student.state_dict()),
        "teacher": copy.deepcopy(trainer.teacher.state_dict()),
        "optimizer": copy.deepcopy(trainer.optimizer.state_dict()),
        "centres": {d: loss.center.clone() for d, loss in trainer.dino_losses.items()},
    }


def _restore(trainer, state) -> None:
    trainer.student.load_state_dict(state["student"])
    trainer.teacher.load_state_dict(state["teacher"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    for d, loss in trainer.dino_losses.items():
        loss.center.copy_(state["centres"][d])


@pytest.mark.parametrize("epoch", [0, 1])
def test_plain_step_equals_the_engine_step(trainer, epoch):
    batch = next(trainer.batches(epoch))
    start = _snapshot(trainer)
    step = epoch * trainer.steps_per_epoch

    torch.manual_seed(123)  # drop-path masks
    trainer.student.train()
    engine, _ = trainer.train_step(batch, epoch, step)
    engine_state = _snapshot(trainer)
    _restore(trainer, start)
    torch.manual_seed(123)
    plain = ama_step(trainer, batch, epoch, step)
    plain_state = _snapshot(trainer)
    _restore(trainer, start)

    expected = {"total", "sd_sketch", "sd_photo"} | ({"cc", "ma", "sg"} if epoch else set())
    assert set(engine) == set(plain) == expected
    for term in expected:
        torch.testing.assert_close(plain[term], engine[term], rtol=1e-5, atol=1e-6,
                                   msg=lambda m, t=term: f"loss term {t}: {m}")
    moved = 0
    for net in ("student", "teacher"):
        for key, value in plain_state[net].items():
            moved += not torch.equal(value, start[net][key])
            torch.testing.assert_close(value, engine_state[net][key], rtol=1e-5, atol=1e-6,
                                       msg=lambda m, n=net, k=key: f"{n}.{k}: {m}")
    assert moved > 0  # the step did change the networks
    for d in trainer.domains:
        torch.testing.assert_close(plain_state["centres"][d], engine_state["centres"][d])
    assert all(p.grad is None for p in trainer.teacher.parameters())


def test_the_engine_calls_the_step_notebook_05_prints(trainer, monkeypatch):
    """Notebook 05 prints ``amalib.train.step.ama_losses`` and ``Trainer.train_step``; the engine
    calls that very function (identity, not a copy), once per step."""
    import json
    from pathlib import Path

    from amalib.train import step
    from amalib.train import trainer as engine

    assert engine.ama_losses is step.ama_losses and engine.forward is step.forward
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs["epoch"])
        return step.ama_losses(*args, **kwargs)

    monkeypatch.setattr(engine, "ama_losses", spy)  # the name the engine looks up at each step
    state = _snapshot(trainer)
    trainer.student.train()
    trainer.train_step(next(trainer.batches(1)), 1, 1)
    _restore(trainer, state)
    assert calls == [1]
    notebook = Path(__file__).parents[2] / "notebooks" / "05_training.ipynb"
    code = ["".join(c["source"]) for c in json.loads(notebook.read_text())["cells"]
            if c["cell_type"] == "code"]
    assert any("from amalib.train import step" in c and "getsource(step.ama_losses)" in c
               for c in code)
    assert any("getsource(Trainer.train_step)" in c for c in code)
    assert any("step.ama_losses(" in c and "step.forward(" in c for c in code)  # run by hand
