"""The training loop end to end on a tiny generated benchmark."""

from __future__ import annotations

import copy
import json
import os
import signal

import pytest
import torch

from amalib.checkpoint_io import load_checkpoint
from amalib.config import ConfigError
from amalib.train.interrupt import TrainingDivergedError, TrainingInterrupted
from amalib.train.trainer import Trainer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_smoke_run_covers_every_stage(tiny_config, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(tiny_config(), run, progress=False, log=lambda _: None)
    teacher_before = _params(trainer.teacher)
    history = trainer.fit()
    assert [r["epoch"] for r in history] == [0, 1]
    # Epoch 0 is the warm-up (self-distillation only); epoch 1 adds CC, MA and SG with k-means.
    assert set(history[0]["loss"]) == {"total", "sd_sketch", "sd_photo"}
    assert {"cc", "ma", "sg"} <= set(history[1]["loss"])
    assert all(torch.isfinite(torch.tensor(list(r["loss"].values()))).all() for r in history)
    assert [len(r) for r in trainer.clusters.values()] == [2, 2]
    for record in history:
        ev = record["eval"]
        assert 0 <= ev["mAP@all"] <= 1 and ev["n_queries"] == 6 and ev["n_excluded"] == 0
    # The teacher moved by EMA only.
    changed = [k for k, v in _params(trainer.teacher).items() if not torch.equal(v, teacher_before[k])]
    assert changed
    assert not any(p.requires_grad for p in trainer.teacher.parameters())
    # The run directory describes itself.
    assert (run / "config.yaml").read_text().startswith("benchmark: mini")
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1]
    # The trainer draws nothing (train is below no figure): the curves come from its records.
    assert not (run / "curves.png").exists()
    from amalib.viz.curves import save_training_curves

    path = save_training_curves(history, run / "curves.png", out_dim=trainer.cfg["model"]["out_dim"])
    assert path.read_bytes()[:8] == PNG_MAGIC
    state = load_checkpoint(run / "checkpoint.pth")
    assert {"student", "teacher", "optimizer", "scaler", "dino_loss", "epoch", "rng",
            "config"} <= set(state)
    assert state["epoch"] == 2 and set(state["dino_loss"]) == {"sketch", "photo"}


def test_training_batches_carry_no_labels(tiny_config, tmp_path):
    trainer = Trainer(tiny_config(), tmp_path / "run", progress=False, log=lambda _: None)
    batch = next(trainer.batches(0))
    for crops, indices in batch.values():
        assert isinstance(crops, list) and all(c.ndim == 4 for c in crops)
        assert indices.dtype == torch.long and len(indices) == 8
    assert not hasattr(trainer.train_sets["sketch"], "labels")


def test_resume_gives_the_same_parameters(tiny_config, tmp_path):
    straight = Trainer(tiny_config(), tmp_path / "a", progress=False, log=lambda _: None)
    straight.fit()

    first = Trainer(tiny_config(**{"train.epochs": 2}), tmp_path / "b", progress=False,
                    log=lambda _: None)
    first.epochs = 1  # stop after the first epoch, as a crash would
    first.fit()
    resumed = Trainer(tiny_config(), tmp_path / "b", progress=False, log=lambda _: None,
                      resume=tmp_path / "b" / "checkpoint.pth")
    assert resumed.start_epoch == 1
    resumed.fit()
    for name, module in (("student", "student"), ("teacher", "teacher")):
        a, b = _params(getattr(straight, module)), _params(getattr(resumed, module))
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}.{key} differs after resume"
    for d in ("sketch", "photo"):
        assert torch.equal(straight.dino_losses[d].center, resumed.dino_losses[d].center)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_config, tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer = Trainer(tiny_config(**{"train.epochs": 3}), run, progress=False, log=lambda _: None)
    original = trainer.compute_losses

    def poisoned(batch, epoch):
        losses, total, stats = original(batch, epoch)
        if epoch == 1:
            losses["sd_photo"] = losses["sd_photo"] * float("nan")
            total = total * float("nan")
        return losses, total, stats

    monkeypatch.setattr(trainer, "compute_losses", poisoned)
    with pytest.raises(TrainingDivergedError, match="non-finite loss at epoch 1, step 0"):
        trainer.fit()
    state = load_checkpoint(run / "checkpoint.pth")
    assert state["epoch"] == 1  # written after epoch 0, untouched by the diverged epoch
    assert all(torch.isfinite(v).all() for v in state["student"].values() if v.is_floating_point())


def test_sigint_finishes_the_step_and_writes_a_checkpoint(tiny_config, tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer = Trainer(tiny_config(), run, progress=False, log=lambda _: None)
    original = trainer.train_step
    calls = []

    def interrupting(batch, epoch, global_step):
        out = original(batch, epoch, global_step)
        calls.append(global_step)
        if global_step == 0:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(trainer, "train_step", interrupting)
    with pytest.raises(TrainingInterrupted) as stopped:  # not KeyboardInterrupt
        trainer.fit()
    assert stopped.value.exit_status == 130
    assert f"--resume {run / 'checkpoint.pth'}" in str(stopped.value)
    assert calls == [0]
    state = load_checkpoint(run / "checkpoint.pth")
    assert (state["epoch"], state["step"]) == (0, 1)
    resumed = Trainer(tiny_config(), run, progress=False, log=lambda _: None,
                      resume=run / "checkpoint.pth")
    assert (resumed.start_epoch, resumed.start_step) == (0, 1)
    assert len(resumed.fit()) == 2


def test_missing_pretrained_file_is_an_error(tiny_config, tmp_path):
    with pytest.raises(FileNotFoundError, match="pretrained weights not found"):
        Trainer(tiny_config(**{"model.pretrained": str(tmp_path / "nope.pth")}), tmp_path / "r",
                progress=False, log=lambda _: None)


def test_pretrain_mode_trains_on_the_extra_photo_pool(tiny_config, tmp_path):
    trainer = Trainer(tiny_config(**{"train.epochs": 1}), tmp_path / "p", mode="pretrain",
                      progress=False, log=lambda _: None)
    assert list(trainer.train_sets) == ["photo"] and len(trainer.train_sets["photo"]) == 16
    history = trainer.fit()
    assert history[0]["loss"]["sd_photo"] > 0 and "eval" not in history[0]


def test_cnn_stem_trains_and_the_teacher_follows_its_batch_norm(tiny_config, tmp_path):
    cfg = tiny_config(**{"model.stem": "cnn", "train.epochs": 1, "train.max_steps_per_epoch": 2})
    trainer = Trainer(cfg, tmp_path / "cnn", progress=False, log=lambda _: None)
    stem = trainer.student.backbone.patch_embed.proj
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in stem)
    # As in DINO, the teacher normalises training batches with their own statistics (train
    # mode inside the steps), and the run leaves it in eval mode.
    modes = []
    trainer.teacher.backbone.patch_embed.proj[1].register_forward_hook(
        lambda module, *_: modes.append(module.training))
    history = trainer.fit()
    assert True in modes and False in modes and not trainer.teacher.training
    assert torch.isfinite(torch.tensor(history[0]["loss"]["total"]))
    student, teacher = trainer.student.state_dict(), trainer.teacher.state_dict()
    stats = [k for k in student if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(student[k], teacher[k]) for k in stats)
    assert not torch.equal(student[stats[0]], torch.zeros_like(student[stats[0]]))
    # The exported teacher loads back into a model built from the same config.
    again = Trainer(tiny_config(**{"model.stem": "cnn", "model.pretrained":
                                   str(tmp_path / "cnn" / "checkpoint.pth")}),
                    tmp_path / "cnn2", progress=False, log=lambda _: None)
    assert torch.equal(again.teacher.backbone.patch_embed.proj[1].running_mean,
                       teacher["backbone.patch_embed.proj.1.running_mean"])
    # `amalib eval` / `amalib retrieve` rebuild the backbone from the run's config.
    from amalib.retrieval.evaluate import load_trained_backbone

    backbone, _ = load_trained_backbone(tmp_path / "cnn" / "checkpoint.pth")
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(backbone(images), trainer.teacher.eval().backbone(images))
    with pytest.raises(ConfigError, match="model.stem is 'cnn'"):
        Trainer(tiny_config(**{"model.stem": "cnn", "model.pretrained": "hub:vit_tiny"}),
                tmp_path / "hub", progress=False, log=lambda _: None)


@pytest.mark.slow
def test_truncated_sketches_are_replaced_and_batches_stay_equal(tiny_root, tmp_path):
    """Issue 18.1: an unreadable training image used to shrink one domain's batch and crash the
    fused step; it is replaced by a readable image of its domain, counted and logged."""
    import shutil

    from tiny_benchmark import tiny_overrides

    from amalib.config import load_config
    from amalib.data.benchmarks import read_file_list, resolve_benchmark

    root = tmp_path / "mini"
    shutil.copytree(tiny_root, root)
    spec = resolve_benchmark(root, "mini")
    sketches = [path for path, _ in read_file_list(root / spec.sketch_train)]
    broken = sketches[::8]  # 4 of the 32 seen-class sketches
    for rel in broken:
        path = root / spec.image_root / rel
        path.write_bytes(path.read_bytes()[:60])  # truncated
    # One epoch of 4 steps x 8 draws every one of the 32 sketches once.
    cfg = load_config("mini", tiny_overrides(root, **{
        "train.epochs": 1, "train.max_steps_per_epoch": 4}))
    cfg["data"]["generate"] = None  # use the damaged tree as it is
    lines = []
    trainer = Trainer(cfg, tmp_path / "run", progress=False, log=lines.append)
    sizes = []
    original = trainer.train_step

    def recording(batch, epoch, global_step):
        sizes.append({d: len(indices) for d, (_, indices) in batch.items()})
        return original(batch, epoch, global_step)

    trainer.train_step = recording
    history = trainer.fit()
    assert sizes == [{"sketch": 8, "photo": 8}] * 4
    assert history[0]["replaced_unreadable"] == {"sketch": len(broken), "photo": 0}
    assert any("replaced unreadable training images" in line and f"sketch {len(broken)}" in line
               for line in lines)


@pytest.mark.slow
@pytest.mark.parametrize("stop_at", [0, 2], ids=["epoch0", "epoch1-with-kmeans"])
def test_resume_mid_epoch_ends_with_the_uninterrupted_weights(tiny_config, tmp_path, stop_at):
    """Issue 18.2: the RNG state is restored before the next batch and the epoch's clusters come
    from the checkpoint, so stopping after any step and resuming changes nothing."""
    full = Trainer(tiny_config(), tmp_path / "full", progress=False, log=lambda _: None)
    full.fit()
    run = tmp_path / "run"
    trainer = Trainer(tiny_config(), run, progress=False, log=lambda _: None)
    original = trainer.train_step

    def interrupting(batch, epoch, global_step):
        out = original(batch, epoch, global_step)
        if global_step == stop_at:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    trainer.train_step = interrupting
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    state = load_checkpoint(run / "checkpoint.pth")
    assert (state["epoch"], state["step"]) == (stop_at // 2, 1)  # 2 steps per epoch
    assert bool(state["clusters"]) == (stop_at == 2)  # epoch 1 has k-means, epoch 0 has not
    resumed = Trainer(tiny_config(), run, progress=False, log=lambda _: None,
                      resume=run / "checkpoint.pth")
    resumed.fit()
    for name in ("student", "teacher"):
        expected, got = getattr(full, name).state_dict(), getattr(resumed, name).state_dict()
        different = [k for k in expected if not torch.equal(expected[k], got[k])]
        assert not different, f"{name}: {different[:3]}"


def test_warm_up_teacher_is_the_start_with_the_students_batch_norm_statistics(tiny_config,
                                                                             tmp_path):
    # During the head warm-up only batch-norm statistics move the teacher's backbone, and they
    # are the student's (its train-mode forward of every crop; the EMA copies buffers).
    from amalib.retrieval.evaluate import adapt_batch_norm

    trainer = Trainer(tiny_config(**{"train.freeze_backbone_epochs": 1}), tmp_path / "run",
                      progress=False, log=lambda _: None)
    start = copy.deepcopy(trainer.teacher.backbone)
    batches = trainer.batches(0)
    seen = [next(batches), next(batches)]
    for step, batch in enumerate(seen):
        trainer.train_step(batch, epoch=0, global_step=step)
    rebuilt = adapt_batch_norm(copy.deepcopy(start), seen)
    teacher = trainer.teacher.backbone.state_dict()
    buffers = [k for k in teacher if "running_" in k]
    assert buffers, "the tiny model must have batch norm for this test to mean anything"
    assert any(not torch.allclose(teacher[k], start.state_dict()[k]) for k in buffers)
    for k, v in rebuilt.state_dict().items():
        torch.testing.assert_close(v, teacher[k], rtol=1e-5, atol=1e-6, msg=k)
    assert not rebuilt.training


def test_head_warm_up_keeps_the_backbone_and_trains_the_head(tiny_config, tmp_path):
    # train.freeze_backbone_epochs=1: in epoch 0 only the head learns; from epoch 1 on, both.
    trainer = Trainer(tiny_config(**{"train.freeze_backbone_epochs": 1}), tmp_path / "run",
                      progress=False, log=lambda _: None)
    backbone = {k: v for k, v in trainer.student.backbone.named_parameters()}
    start = {k: v.detach().clone() for k, v in backbone.items()}
    head = {k: v.detach().clone() for k, v in trainer.student.head.named_parameters()}
    teacher_start = _params(trainer.teacher.backbone)
    batches = trainer.batches(0)
    trainer.train_step(next(batches), epoch=0, global_step=0)
    assert all(torch.equal(backbone[k], start[k]) for k in start)
    moved = [k for k, v in trainer.student.head.named_parameters()
             if v.requires_grad and not torch.equal(v, head[k])]
    assert moved
    teacher_params = dict(trainer.teacher.backbone.named_parameters())
    # (the EMA of an unchanged student leaves the teacher where it was, up to rounding)
    assert all(torch.allclose(teacher_params[k], teacher_start[k], rtol=0, atol=1e-6)
               for k in teacher_params)
    # Once the warm-up is over, every trainable backbone parameter gets a gradient.
    trainer.cluster(1)
    trainer.train_step(next(batches), epoch=1, global_step=1)
    still = [k for k, v in backbone.items() if v.requires_grad and torch.equal(v, start[k])]
    assert not still


def test_head_warm_up_skips_the_backbones_backward_and_trains_the_same_weights(
        tiny_config, tmp_path, monkeypatch):
    # One process: the frozen backbone builds no graph in the warm-up (no gradient is ever
    # computed for it), and the run ends with the weights of the reference path, which
    # computes the backbone's gradients and drops them (as under DDP): to the bit, with the
    # convolutional stem's batch norm, drop-path and every term in the epoch after.
    extra = {"train.freeze_backbone_epochs": 1, "model.stem": "cnn",
             "model.drop_path_rate": 0.1, "train.max_steps_per_epoch": 3}
    runs, reached = {}, {}
    for skip in (False, True):
        monkeypatch.setattr(Trainer, "skip_frozen_backward", skip)
        trainer = Trainer(tiny_config(**extra), tmp_path / str(skip), progress=False,
                          log=lambda _: None)
        reached[skip] = []
        trainable = [p.requires_grad for p in trainer.student.parameters()]
        now = {}  # the epoch being trained, for the gradient hook
        first = next(trainer.student.backbone.parameters())
        first.register_hook(lambda grad, seen=reached[skip], now=now: seen.append(now["epoch"]))
        epoch_step = trainer.train_one_epoch

        def spy(epoch, stop=None, now=now, epoch_step=epoch_step):
            now["epoch"] = epoch
            return epoch_step(epoch, stop)

        trainer.train_one_epoch = spy
        trainer.fit()
        assert [p.requires_grad for p in trainer.student.parameters()] == trainable
        runs[skip] = trainer
    assert reached == {False: [0, 0, 0, 1, 1, 1], True: [1, 1, 1]}
    for name in ("student", "teacher"):
        expected = getattr(runs[False], name).state_dict()
        got = getattr(runs[True], name).state_dict()
        assert [k for k in expected if not torch.equal(expected[k], got[k])] == [], name
    assert runs[False].history[-1]["eval"] == runs[True].history[-1]["eval"]


def test_a_warm_up_whose_terms_all_read_the_frozen_backbone_trains_nothing(
        tiny_config, tmp_path, monkeypatch):
    # Without SD (the only term through the head), a warm-up step with SG on has a loss that
    # depends on the frozen backbone alone: it moves no student weight, with or without the
    # shortcut (which then has no graph to run backward through).
    cfg = tiny_config(**{"train.freeze_backbone_epochs": 1, "loss.schedule.use_sd": "false",
                         "loss.schedule.sg_start_epoch": 0})
    for skip in (False, True):
        monkeypatch.setattr(Trainer, "skip_frozen_backward", skip)
        trainer = Trainer(cfg, tmp_path / str(skip), progress=False, log=lambda _: None)
        start = _params(trainer.student)
        out, _ = trainer.train_step(next(trainer.batches(0)), epoch=0, global_step=0)
        assert "sg" in out and torch.isfinite(out["total"])
        assert all(torch.equal(v, start[k]) for k, v in _params(trainer.student).items()
                   if "running_" not in k and "num_batches" not in k), skip


def test_frozen_parameters_restores_requires_grad_after_an_error():
    from amalib.train.trainer import frozen_parameters

    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    net[1].bias.requires_grad_(False)  # stays frozen: it did not require gradients before
    with pytest.raises(RuntimeError, match="inside"):
        with frozen_parameters(net):
            assert not any(p.requires_grad for p in net.parameters())
            assert not net(torch.ones(1, 2)).requires_grad
            raise RuntimeError("inside")
    assert [p.requires_grad for p in net.parameters()] == [True, True, True, False]


def test_cpu_autocast_is_opt_in_and_bf16_only(tiny_config, tmp_path):
    # The CPU trains in float32 unless train.cpu_amp asks for bf16 (it changes the numbers).
    dtypes = {}
    for name, extra in (("float32", {}), ("bf16", {"train.cpu_amp": True})):
        trainer = Trainer(tiny_config(**extra), tmp_path / name, device="cpu",
                          log=lambda _l: None)
        seen = []  # what the student's matrix products compute in
        for module in trainer.student.modules():
            if isinstance(module, torch.nn.Linear):
                module.register_forward_hook(lambda m, i, out, seen=seen: seen.append(out.dtype))
        _, total, _ = trainer.compute_losses(next(trainer.batches(0)), 0)
        assert torch.isfinite(total) and total.dtype == torch.float32
        dtypes[name] = set(seen)
    assert dtypes == {"float32": {torch.float32}, "bf16": {torch.bfloat16}}
    with pytest.raises(ConfigError, match="train.cpu_amp"):
        Trainer(tiny_config(**{"train.cpu_amp": True, "train.amp": "fp16"}), tmp_path / "c",
                device="cpu", log=lambda _l: None)
