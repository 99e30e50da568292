"""The command line: user mistakes are one-line errors with exit status 2, not tracebacks."""

from __future__ import annotations

import json

import pytest
from tiny_benchmark import tiny_overrides

from amalib.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_unknown_config_name(capsys):
    code, _, err = _run(capsys, "train", "--config", "sketchy99", "--out", "x")
    assert code == 2 and err.startswith("error: unknown config 'sketchy99'")
    assert "Traceback" not in err


def test_bad_config_key_lists_valid_keys(capsys, tmp_path):
    code, _, err = _run(capsys, "train", "--config", "mini", "--out", str(tmp_path),
                        "--set", "train.lr_rate=1")
    assert code == 2 and "valid keys" in err and "lr" in err


def test_missing_checkpoint(capsys, tmp_path):
    code, _, err = _run(capsys, "eval", "--checkpoint", str(tmp_path / "none.pth"))
    assert code == 2 and "checkpoint not found" in err and "none.pth" in err


def test_contradicting_ap_and_convention_is_one_line(capsys, tmp_path):
    code, _, err = _run(capsys, "eval", "--checkpoint", str(tmp_path / "none.pth"),
                        "--convention", "sem-pcyc", "--ap", "interpolated")
    assert code == 2 and err.strip() == ("error: --ap interpolated contradicts --convention "
                                         "sem-pcyc, whose AP is sklearn: pass one of the two")


def test_bad_generator_parameter_names_the_choices(capsys, tmp_path):
    code, _, err = _run(capsys, "train", "--config", "mini", "--out", str(tmp_path / "run"),
                        "--set", f"data.root={tmp_path / 'mini'}",
                        "--set", "data.generate.photo_style=noisy")
    assert code == 2 and "data.generate" in err and "'calm'" in err
    assert "Traceback" not in err and not (tmp_path / "mini").exists()


def test_data_root_holding_other_files_is_refused_not_overwritten(capsys, tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    code, _, err = _run(capsys, "train", "--config", "mini", "--out", str(tmp_path / "run"),
                        "--set", f"data.root={root}")
    assert code == 2 and "refusing to overwrite" in err and str(root) in err
    assert "Traceback" not in err and (root / "notes.txt").read_text() == "keep me"


def test_unknown_benchmark(capsys, tmp_path):
    code, _, err = _run(capsys, "train", "--config", "mini", "--out", str(tmp_path),
                        "--set", "benchmark=sketchy3")
    assert code == 2 and "unknown benchmark 'sketchy3'" in err and "sketchy21" in err


def test_real_benchmark_without_data_root(capsys, tmp_path):
    code, _, err = _run(capsys, "train", "--config", "tuberlin", "--out", str(tmp_path))
    assert code == 2 and "data.root" in err


def test_python_dash_m_entry_point():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "amalib", "--help"], capture_output=True,
                         text=True, check=True)
    for command in ("demo", "train", "eval", "prepare", "retrieve", "pretrain", "ablate"):
        assert command in out.stdout


@pytest.mark.slow
def test_train_eval_retrieve_round_trip(capsys, tiny_root, tmp_path):
    sets = [a for o in tiny_overrides(tiny_root, **{"train.epochs": 1}) for a in ("--set", o)]
    code, out, err = _run(capsys, "train", "--config", "mini", "--out", str(tmp_path / "run"),
                          "--no-progress", *sets)
    assert code == 0, err
    # `amalib train` draws the curves from the run's records (the trainer itself draws nothing).
    assert (tmp_path / "run" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = tmp_path / "run" / "checkpoint.pth"
    code, out, err = _run(capsys, "eval", "--checkpoint", str(ckpt), "--no-progress",
                          "--json", str(tmp_path / "m.json"))
    assert code == 0, err
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert 0 <= metrics["mAP@all"] <= 1 and metrics["n_queries"] == 6
    assert metrics["convention"] == "ama"
    code, out, err = _run(capsys, "eval", "--checkpoint", str(ckpt), "--no-progress",
                          "--convention", "sem-pcyc", "--json", str(tmp_path / "s.json"))
    assert code == 0, err
    assert "(sem-pcyc convention, sklearn AP" in out
    plain = json.loads((tmp_path / "s.json").read_text())
    assert plain["convention"] == "sem-pcyc" and plain["P@100"] == metrics["P@100"]
    sketch = sorted((tiny_root / "sketch").rglob("*.png"))[0]
    picture = tmp_path / "top.png"
    code, out, err = _run(capsys, "retrieve", "--checkpoint", str(ckpt), "--sketch",
                          str(sketch), "--k", "3", "--out", str(picture))
    assert code == 0, err
    assert picture.read_bytes()[:4] == b"\x89PNG" and out.count("cosine") == 3


@pytest.fixture
def tiny_checkpoint(tiny_root, tmp_path):
    """A checkpoint as `amalib train` writes it (the parts `retrieve` reads), without training."""
    import torch

    from amalib.config import load_config
    from amalib.models import create_vit

    cfg = load_config("mini", tiny_overrides(tiny_root))
    m = cfg["model"]
    torch.manual_seed(0)
    backbone = create_vit(m["arch"], patch_size=m["patch_size"], img_size=m["img_size"],
                          stem=m.get("stem", "patch"))
    path = tmp_path / "checkpoint.pth"
    torch.save({"config": cfg,
                "teacher": {f"backbone.{k}": v for k, v in backbone.state_dict().items()}}, path)
    return path


def test_retrieve_with_strokes(capsys, tiny_checkpoint, tmp_path):
    from amalib.data.strokes import example_strokes, save_strokes

    drawing = save_strokes(tmp_path / "drawing.json", example_strokes("bar_wheels"),
                           canvas_size=256)
    picture = tmp_path / "top.png"
    code, out, err = _run(capsys, "retrieve", "--checkpoint", str(tiny_checkpoint), "--strokes",
                          str(drawing), "--k", "3", "--label", "0", "--out", str(picture))
    assert code == 0, err
    assert picture.read_bytes()[:4] == b"\x89PNG" and out.count("cosine") == 3
    assert out.count("  hit") + out.count("  miss") == 3 and "hits: " in out


def test_retrieve_with_a_sketch_file(capsys, tiny_checkpoint, tiny_root, tmp_path):
    sketch = sorted((tiny_root / "sketch").rglob("*.png"))[0]
    code, out, err = _run(capsys, "retrieve", "--checkpoint", str(tiny_checkpoint), "--sketch",
                          str(sketch), "--k", "2", "--out", str(tmp_path / "top.png"))
    assert code == 0, err
    assert out.count("cosine") == 2 and "hits:" not in out


def test_retrieve_refuses_bad_drawings_and_labels(capsys, tiny_checkpoint, tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text('{"strokes": []}')
    code, _, err = _run(capsys, "retrieve", "--checkpoint", str(tiny_checkpoint), "--strokes",
                        str(empty))
    assert code == 2 and "empty drawing" in err and "Traceback" not in err
    code, _, err = _run(capsys, "retrieve", "--checkpoint", str(tiny_checkpoint), "--strokes",
                        str(tmp_path / "none.json"))
    assert code == 2 and "strokes file not found" in err
    drawing = tmp_path / "line.json"
    drawing.write_text("[[[0, 0], [100, 100]]]")
    code, _, err = _run(capsys, "retrieve", "--checkpoint", str(tiny_checkpoint), "--strokes",
                        str(drawing), "--label", "unicorn", "--out", str(tmp_path / "x.png"))
    assert code == 2 and "unknown class 'unicorn'" in err


def test_retrieve_needs_one_sketch(capsys):
    with pytest.raises(SystemExit):
        main(["retrieve", "--checkpoint", "c.pth"])
    assert "--sketch" in capsys.readouterr().err


def _checkpoint_of_a_fresh_benchmark(tmp_path):
    """A trained-model file whose config generates a tiny benchmark into a folder that does not
    exist yet; returns (its path, that folder)."""
    import torch

    from amalib.config import load_config
    from amalib.models import create_vit

    root = tmp_path / "fresh" / "mini"
    cfg = load_config("mini", tiny_overrides(root))
    m = cfg["model"]
    backbone = create_vit(m["arch"], patch_size=m["patch_size"], img_size=m["img_size"],
                          stem=m["stem"])
    path = tmp_path / "checkpoint.pth"
    torch.save({"config": cfg,
                "teacher": {f"backbone.{k}": v for k, v in backbone.state_dict().items()}}, path)
    return path, root


def test_eval_generates_the_embedded_benchmark_on_first_use(capsys, tmp_path):
    """A fresh clone has no data/mini: `amalib eval --checkpoint ama_mini` generates it, as
    training does (here a tiny benchmark, into a folder that does not exist yet)."""
    path, root = _checkpoint_of_a_fresh_benchmark(tmp_path)
    code, out, err = _run(capsys, "eval", "--checkpoint", str(path), "--no-progress")
    assert code == 0, err
    assert (root / "zeroshot").is_dir() and "mAP@all" in out


def test_index_build_generates_the_embedded_benchmark_on_first_use(capsys, tmp_path):
    """The README's `amalib index build --checkpoint ama_mini --gallery mini:test` on a fresh
    clone: the gallery of the model's own benchmark is generated first, as for eval."""
    path, root = _checkpoint_of_a_fresh_benchmark(tmp_path)
    index = tmp_path / "g.amaidx"
    code, out, err = _run(capsys, "index", "build", "--checkpoint", str(path), "--gallery",
                          "mini:test", "--out", str(index), "--no-progress")
    assert code == 0, err
    assert (root / "zeroshot").is_dir() and index.exists() and out.startswith("indexed ")
