"""The trained AMA model that ships with amalib (``amalib/assets/ama_mini.pth``, name ``ama_mini``).

Its own benchmark (the mini-benchmark) takes minutes to generate, so nothing here evaluates it
on that benchmark: the file, its loading by name and the commands that take it are checked on
the tiny benchmark and without the network.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import torch
from tiny_benchmark import tiny_overrides

from amalib import checkpoint_io
from amalib.checkpoint_io import (
    SHIPPED_MODELS,
    checkpoint_kind,
    load_checkpoint,
    names_package_file,
    read_torch_file,
    resolve_checkpoint,
)
from amalib.cli import main
from amalib.errors import CheckpointError
from amalib.retrieval.evaluate import load_trained_backbone

ASSET = Path(str(resources.files("amalib") / "assets" / "ama_mini.pth"))


def test_the_asset_is_small_float16_and_of_its_own_kind():
    assert ASSET.is_file() and ASSET.stat().st_size < 8e6
    state = read_torch_file(ASSET)  # weights_only=True
    assert checkpoint_kind(state) == "ama-model"
    assert "ama-model" in checkpoint_io.CHECKPOINT_KINDS
    weights = state["teacher"]
    assert weights and all(k.startswith("backbone.") for k in weights)
    assert all(v.dtype == torch.float16 for v in weights.values() if v.is_floating_point())
    assert not {"student", "optimizer", "rng"} & set(state)


def test_the_asset_records_its_provenance_and_metrics():
    state = load_checkpoint("ama_mini", expect="ama-model")
    prov = state["provenance"]
    assert prov["command"] == "amalib demo --seed 0"
    assert prov["config_name"] == "mini" and prov["seed"] == 0 and prov["epochs"] == 6
    assert prov["torch_threads"] == 2 and prov["machine"]
    assert prov["before"]["mAP@all"] < prov["after"]["mAP@all"]
    assert abs(prov["after_float16"]["mAP@all"] - prov["after"]["mAP@all"]) < 0.005
    assert prov["after"]["mAP@all"] >= 1.3 * prov["before"]["mAP@all"]
    assert prov["amalib_version"] and prov["export_commit"]
    assert "export_shipped_model.py" in prov["export_command"]
    assert state["config"]["benchmark"] == "mini" and state["epoch"] == 6
    records = state["metrics"]  # the run's metrics.jsonl
    assert [r["epoch"] for r in records] == list(range(6))
    assert abs(records[-1]["eval"]["mAP@all"] - prov["after"]["mAP@all"]) < 1e-9


def test_loading_by_name_gives_a_float32_mini_backbone():
    backbone, config = load_trained_backbone("ama_mini")
    assert config["benchmark"] == "mini" and config["model"]["arch"] == "vit_mini"
    assert all(p.dtype == torch.float32 for p in backbone.parameters())
    assert not backbone.training
    same, _ = load_trained_backbone("package:assets/ama_mini.pth")
    x = torch.zeros(1, 3, config["model"]["img_size"], config["model"]["img_size"])
    torch.testing.assert_close(same(x), backbone(x))
    assert resolve_checkpoint("ama_mini") == ASSET
    assert resolve_checkpoint("runs/x.pth") == Path("runs/x.pth")
    # what resolve_checkpoint reads inside amalib, and what it reads as a path
    assert names_package_file("ama_mini") and names_package_file("package:assets/ama_mini.pth")
    assert not names_package_file("./ama_mini") and not names_package_file(Path("runs/x.pth"))


def test_an_exported_model_holds_no_student():
    with pytest.raises(CheckpointError, match="only the teacher"):
        load_trained_backbone("ama_mini", which="student")


def test_a_missing_shipped_file_names_it_and_the_fix(monkeypatch):
    monkeypatch.setitem(SHIPPED_MODELS, "ama_gone", "assets/ama_gone.pth")
    with pytest.raises(FileNotFoundError) as info:
        load_trained_backbone("ama_gone")
    message = str(info.value)
    assert "ama_gone.pth is missing" in message
    assert "reinstall" in message.lower() and "export_shipped_model.py" in message


def test_an_unknown_name_lists_the_shipped_ones(capsys):
    code = main(["eval", "--checkpoint", "ama_nope"])
    err = capsys.readouterr().err
    assert code == 2 and "checkpoint not found: ama_nope" in err and "ama_mini" in err


def test_the_cli_takes_the_name(capsys, tiny_root, tmp_path):
    """`amalib retrieve --checkpoint ama_mini` on a folder gallery (the model's own benchmark is
    not needed for a folder); `--help` says the name."""
    photos = tiny_root / "photo"
    sketch = sorted((tiny_root / "sketch").rglob("*.png"))[0]
    code = main(["retrieve", "--checkpoint", "ama_mini", "--gallery", str(photos), "--sketch",
                 str(sketch), "--k", "2", "--out", str(tmp_path / "top.png")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.count("cosine") == 2
    for command in (["eval"], ["retrieve"], ["index", "build"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        assert "ama_mini" in capsys.readouterr().out


def test_a_gallery_index_records_the_name(tiny_root):
    pytest.importorskip("faiss")
    from amalib.retrieval.gallery import build_gallery_index, load_query_model

    index = build_gallery_index("ama_mini", str(tiny_root / "photo"), device="cpu",
                                progress=False)
    assert index.provenance["checkpoint"]["path"] == "ama_mini"
    backbone, _ = load_query_model(index)  # the recorded name loads, wherever amalib is
    assert backbone.num_features == index.dim


def test_export_trained_model_round_trip(tiny_root, tmp_path):
    """What benchmarks/export_shipped_model.py writes, from a checkpoint in the train layout."""
    from amalib.config import load_config
    from amalib.models import create_vit
    from amalib.train.state import export_trained_model

    cfg = load_config("mini", tiny_overrides(tiny_root))
    m = cfg["model"]
    torch.manual_seed(0)
    backbone = create_vit(m["arch"], patch_size=m["patch_size"], img_size=m["img_size"],
                          stem=m["stem"]).eval()
    checkpoint = tmp_path / "checkpoint.pth"
    torch.save({"config": cfg, "mode": "ama", "epoch": 2, "history": [{"epoch": 0}],
                "teacher": {f"backbone.{k}": v for k, v in backbone.state_dict().items()}},
               checkpoint)
    out = export_trained_model(checkpoint, tmp_path / "model.pth", provenance={"seed": 0})
    state = load_checkpoint(out)
    assert checkpoint_kind(state) == "ama-model" and state["metrics"] == [{"epoch": 0}]
    assert state["provenance"] == {"seed": 0} and state["epoch"] == 2
    loaded, config = load_trained_backbone(out)
    assert config == load_config("mini", tiny_overrides(tiny_root))
    x = torch.rand(2, 3, m["img_size"], m["img_size"])
    torch.testing.assert_close(loaded(x), backbone(x), atol=2e-2, rtol=2e-2)
    with pytest.raises(CheckpointError, match="trained AMA model"):
        load_checkpoint(out, expect="ama")  # error messages name the kind
