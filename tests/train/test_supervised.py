"""Supervised training: the embedded starting backbone (pool classes) and the ablation's oracle."""

from __future__ import annotations

import pytest
import torch
from tiny_benchmark import tiny_overrides

from amalib.checkpoint_io import load_checkpoint
from amalib.cli import main
from amalib.config import load_config
from amalib.data.benchmarks import read_file_list, resolve_benchmark
from amalib.data.datasets import LabelledImages
from amalib.data.transforms import supervised_transform
from amalib.models import create_vit, load_dino_backbone
from amalib.models.checkpoint import read_dino_checkpoint
from amalib.train.supervised import export_backbone, pretrain_supervised, train_supervised


def _pool(root) -> tuple[list[LabelledImages], int]:
    spec = resolve_benchmark(root, "mini")
    items = read_file_list(root / spec.pretrain_photos)
    ds = LabelledImages(root / spec.image_root, root / spec.pretrain_photos,
                        supervised_transform(32))
    return [ds], 1 + max(label for _, label in items)


def test_supervised_transform_crops_flips_and_normalises():
    from PIL import Image

    image = Image.new("RGB", (64, 64), (255, 255, 255))
    out = supervised_transform(32)(image)
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    # White normalised with ImageNet's statistics: (1 - mean) / std, per channel.
    expected = torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225])
    torch.testing.assert_close(out.mean(dim=(1, 2)), expected, atol=1e-4, rtol=0)


def test_cross_entropy_falls_and_every_parameter_learns(tiny_root):
    torch.manual_seed(0)
    backbone = create_vit("vit_micro", patch_size=8, img_size=32, stem="cnn")
    before = {k: v.detach().clone() for k, v in backbone.named_parameters()}
    sets, n_classes = _pool(tiny_root)
    history = train_supervised(backbone, sets, n_classes, steps=30, batch_size=16, lr=2e-3,
                               weight_decay=0.0, progress=False, log=lambda _line: None)
    assert [r["step"] for r in history] == [3 * (i + 1) for i in range(10)]
    assert history[-1]["loss"] < history[0]["loss"]
    unchanged = [k for k, v in backbone.named_parameters() if torch.equal(v, before[k])]
    assert unchanged == []
    assert not backbone.training  # returned in eval mode, ready for features


def test_checkpoint_resume_and_export_round_trip(tiny_root, tmp_path):
    sets, n_classes = _pool(tiny_root)
    ckpt = tmp_path / "sup.pth"

    def run(steps, resume=False, seed=0):
        torch.manual_seed(seed)
        backbone = create_vit("vit_micro", patch_size=8, img_size=32, stem="cnn")
        train_supervised(backbone, sets, n_classes, steps=steps, batch_size=8, lr=1e-3,
                         weight_decay=0.0, checkpoint=ckpt, checkpoint_every=2, resume=resume,
                         extra_state={"mode": "pretrain-supervised",
                                      "provenance": {"objective": "supervised", "steps": 4}},
                         progress=False, log=lambda _line: None)
        return backbone

    uninterrupted = {k: v.clone() for k, v in run(4).state_dict().items()}
    ckpt.unlink()
    run(2)
    assert load_checkpoint(ckpt)["step"] == 2
    resumed = run(4, resume=True, seed=123)  # the weights come from the checkpoint, not the seed
    state = load_checkpoint(ckpt)
    assert state["step"] == 4 and [r["step"] for r in state["history"]] == [2, 4]
    # Stopped after step 2 and resumed: the same weights as the run that was never stopped.
    for key, value in resumed.state_dict().items():
        torch.testing.assert_close(value, uninterrupted[key], rtol=0, atol=0)

    out = export_backbone(ckpt, tmp_path / "asset.pth", command="amalib pretrain ...")
    read = read_dino_checkpoint(out)
    assert read.extra["provenance"] == {"objective": "supervised", "steps": 4, "steps_done": 4,
                                        "final_loss": round(state["history"][-1]["loss"], 4),
                                        "command": "amalib pretrain ..."}
    assert read.heads == {}  # a backbone only: AMA's DINO head starts from random weights
    loaded = load_dino_backbone(out, arch="vit_micro", patch_size=8, stem="cnn")
    for key, value in resumed.state_dict().items():
        # float16 storage: within half precision of the trained weights.
        torch.testing.assert_close(loaded.state_dict()[key].float(), value.float(), atol=2e-3,
                                   rtol=1e-3)


def test_export_refuses_other_checkpoints(tmp_path):
    from amalib.checkpoint_io import save_checkpoint

    save_checkpoint({"mode": "ama", "step": 0}, tmp_path / "c.pth")
    with pytest.raises(ValueError, match="not a supervised pretraining checkpoint"):
        export_backbone(tmp_path / "c.pth", tmp_path / "out.pth")


def test_pretraining_reads_pool_labels_only(tiny_root, tmp_path, monkeypatch):
    """The labels that reach the loss are the pool list's, never a seen or unseen class's."""
    cfg = load_config("mini_pretrain", tiny_overrides(tiny_root, **{
        "pretrain.steps": 2, "pretrain.batch_size": 4, "pretrain.checkpoint_every": 1}))
    spec = resolve_benchmark(tiny_root, "mini")

    def classes(list_file):  # the class folder of every image of a list
        return {path.split("/")[-2] for path, _ in read_file_list(tiny_root / list_file)}

    benchmark_lists = (spec.sketch_train, spec.photo_train, spec.sketch_test, spec.photo_test)
    assert classes(spec.pretrain_photos).isdisjoint(set().union(*map(classes, benchmark_lists)))
    seen_lists = []
    real = LabelledImages.__init__

    def spy(self, root, list_file, *args, **kwargs):
        seen_lists.append(str(list_file))
        real(self, root, list_file, *args, **kwargs)

    monkeypatch.setattr(LabelledImages, "__init__", spy)
    ckpt = pretrain_supervised(cfg, tmp_path / "run", progress=False, log=lambda _line: None)
    assert seen_lists == [str(tiny_root / spec.pretrain_photos)]
    state = load_checkpoint(ckpt)
    assert state["provenance"]["pool_classes"] == 2 and state["provenance"]["steps"] == 2


@pytest.mark.slow
def test_cli_pretrain_supervised_exports_a_loadable_starting_backbone(tiny_root, tmp_path):
    asset = tmp_path / "asset.pth"
    overrides = tiny_overrides(tiny_root, **{"pretrain.steps": 2, "pretrain.batch_size": 4})
    argv = ["pretrain", "--out", str(tmp_path / "run"), "--export", str(asset), "--no-progress"]
    for item in overrides:
        argv += ["--set", item]
    assert main(argv) == 0
    provenance = read_dino_checkpoint(asset).extra["provenance"]
    assert provenance["objective"] == "supervised" and provenance["steps_done"] == 2
    assert provenance["command"].startswith("amalib pretrain --config mini_pretrain")
    # The exported file is a valid `model.pretrained` of an AMA run with the same architecture.
    from amalib.train.trainer import Trainer

    cfg = load_config("mini", tiny_overrides(tiny_root, **{"model.pretrained": str(asset)}))
    trainer = Trainer(cfg, tmp_path / "ama", progress=False, log=lambda _line: None)
    loaded = load_dino_backbone(asset, arch="vit_micro", patch_size=8, stem="cnn")
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(trainer.teacher.backbone.state_dict()[key], value)


def test_unknown_pretrain_objective_is_a_one_line_error(tiny_root, tmp_path, capsys):
    argv = ["pretrain", "--out", str(tmp_path / "run"), "--set", "pretrain.objective=mae"]
    assert main(argv) == 2
    assert "pretrain.objective must be 'dino' or 'supervised'" in capsys.readouterr().err


def test_resume_refuses_another_kind_of_checkpoint(tiny_root, tmp_path):
    from amalib.checkpoint_io import save_checkpoint

    sets, n_classes = _pool(tiny_root)
    save_checkpoint({"student": {}, "teacher": {}, "step": 1}, tmp_path / "dino.pth")
    backbone = create_vit("vit_micro", patch_size=8, img_size=32, stem="cnn")
    with pytest.raises(ValueError, match="not a supervised-training checkpoint"):
        train_supervised(backbone, sets, n_classes, steps=2, batch_size=4, lr=1e-3,
                         weight_decay=0.0, checkpoint=tmp_path / "dino.pth", resume=True,
                         progress=False, log=lambda _line: None)


def test_non_finite_loss_is_a_divergence_error_before_any_update(tiny_root):
    from amalib.train.interrupt import TrainingDivergedError

    sets, n_classes = _pool(tiny_root)
    backbone = create_vit("vit_micro", patch_size=8, img_size=32, stem="cnn")
    with torch.no_grad():
        backbone.norm.weight.fill_(float("nan"))
    before = {k: v.detach().clone() for k, v in backbone.named_parameters()}
    with pytest.raises(TrainingDivergedError, match="non-finite cross-entropy at step 1"):
        train_supervised(backbone, sets, n_classes, steps=2, batch_size=4, lr=1e-3,
                         weight_decay=0.0, progress=False, log=lambda _line: None)
    # No optimiser step was taken (the forward's batch-norm statistics may move; weights not).
    for key, value in backbone.named_parameters():
        torch.testing.assert_close(value.detach(), before[key], equal_nan=True, rtol=0, atol=0)
