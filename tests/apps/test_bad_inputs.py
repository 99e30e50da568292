"""Bad input, as a user gives it: every command answers with one line that names the fix.

The counterpart of the fault-injection tests beside it (test_trainer.py, test_demo.py: a run
survives a NaN, a signal, a truncated image). Here the user is wrong: a missing, truncated or
wrong-kind file (a checkpoint where an index belongs and the reverse, a DINO file where a run
belongs, a file that is not an image, a drawing of the wrong shape), a config of another
benchmark or architecture, a value of the wrong type, an impossible combination. Each case goes
through the real entry point, :func:`amalib.cli.main` (two through the installed ``amalib``
script), and asserts the exit status (2: a mistake in the input) and the one ``error:`` line on
stderr, without a traceback. The notebook helpers (``select_profile``, ``load_or_train``, the
sketch pad's query) raise an :class:`amalib.errors.AmalibError` with a one-line message instead.
Two seeded random sweeps stand in for hypothesis (not a dependency) on the ``--set`` and strokes
parsers.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_benchmark import tiny_overrides

from amalib.cli import main
from amalib.config import ConfigError, apply_overrides, load_config
from amalib.errors import AmalibError, CheckpointError, InputError

DINO_FILE = Path(str(resources.files("amalib") / "assets" / "mini_backbone.pth"))


# ---------------------------------------------------------------------------------------- files


def _checkpoint(cfg: dict, seed: int) -> dict:
    """The parts of an `amalib train` checkpoint that eval, index build and retrieve read."""
    from amalib.models import create_vit

    m = cfg["model"]
    torch.manual_seed(seed)
    backbone = create_vit(m["arch"], patch_size=m["patch_size"], img_size=m["img_size"],
                          stem=m.get("stem", "patch"))
    return {"config": cfg, "mode": "ama", "epoch": 1, "step": 0,
            "teacher": {f"backbone.{k}": v for k, v in backbone.state_dict().items()}}


@pytest.fixture(scope="module")
def files(tiny_root, tmp_path_factory) -> dict[str, str]:
    """Good and bad files, by name (made once: each case only reads them)."""
    from amalib.retrieval.gallery import build_gallery_index

    d = tmp_path_factory.mktemp("bad_inputs")
    cfg = load_config("mini", tiny_overrides(tiny_root))
    f = {"root": d, "tiny_root": tiny_root}
    torch.save(_checkpoint(cfg, 0), d / "ckpt.pth")
    torch.save(_checkpoint(cfg, 1), d / "other.pth")  # the same architecture, other weights
    data = (d / "ckpt.pth").read_bytes()
    (d / "trunc.pth").write_bytes(data[: len(data) // 2])
    (d / "cut.pth").write_bytes(data[:5000])  # torch's zip reader: OSError EINVAL, not RuntimeError
    (d / "empty.pth").write_bytes(b"")
    # A checkpoint of the release config (ViT-B/16, out_dim 65536): the config is what the
    # resume check reads, so no 86M weights are needed.
    release = load_config("release", ["benchmark=sketchy21"])
    torch.save({"config": release, "mode": "ama", "teacher": {}, "student": {}, "epoch": 3,
                "step": 0}, d / "release.pth")
    torch.save({"config": cfg, "mode": "pretrain-supervised", "backbone": {}, "classifier": {},
                "step": 0}, d / "supervised.pth")
    (d / "run").mkdir()
    shutil.copy(d / "ckpt.pth", d / "run" / "checkpoint.pth")
    (d / "folder").mkdir()
    build_gallery_index(d / "ckpt.pth", None, progress=False).save(d / "g.amaidx")
    index = (d / "g.amaidx").read_bytes()
    (d / "trunc.amaidx").write_bytes(index[: len(index) // 2])
    (d / "notindex.amaidx").write_text("hello")
    sketch = sorted((Path(tiny_root) / "sketch").rglob("*.png"))[0]
    shutil.copy(sketch, d / "ok.png")
    (d / "bad.png").write_text("this is not a png")
    png = sketch.read_bytes()
    (d / "trunc.png").write_bytes(png[: len(png) // 2])
    spaced = d / "my drawings ünïcødé"
    spaced.mkdir()
    drawings = {
        "wrong_shape.json": [["n", "o"]],
        "triples.json": {"strokes": [[[1, 2, 3], [4, 5, 6]]]},
        "text_strokes.json": {"strokes": "abc"},
        "canvas.json": {"canvas_size": "big", "strokes": [[[0, 0], [9, 9]]]},
        "no_strokes.json": {"lines": [[[0, 0], [9, 9]]]},
        "nan.json": {"strokes": [[[0, 0], [1e400, 9]]]},  # json writes inf as Infinity
    }
    for name, content in drawings.items():
        (spaced / name).write_text(json.dumps(content))
    (d / "broken.yaml").write_text("train: {epochs: 3\n")
    (d / "typed.yaml").write_text("base: mini\ntrain:\n  epochs: abc\n")
    (d / "a_file").write_text("I am a file")
    for key, name in {"ckpt": "ckpt.pth", "other": "other.pth", "trunc": "trunc.pth",
                      "cut": "cut.pth",
                      "empty": "empty.pth", "release": "release.pth",
                      "supervised": "supervised.pth", "run": "run", "folder": "folder",
                      "g": "g.amaidx", "trunc_amaidx": "trunc.amaidx",
                      "notindex": "notindex.amaidx", "ok": "ok.png", "bad": "bad.png",
                      "trunc_png": "trunc.png", "broken": "broken.yaml", "typed": "typed.yaml",
                      "a_file": "a_file"}.items():
        f[key] = d / name
    for name in drawings:
        f[Path(name).stem] = spaced / name
    f["dino"] = DINO_FILE
    f["missing"] = d / "nowhere" / "x"
    return {k: str(v) for k, v in f.items()}


# ---------------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One bad input: the arguments (``{name}`` → a file of :func:`files`; ``TINY``: the tiny
    benchmark's ``--set`` overrides), the exit status and a regex of the ``error:`` line."""

    id: str
    argv: tuple[str, ...]
    message: str
    code: int = 2


def case(id_: str, argv: str, message: str, code: int = 2) -> Case:
    return Case(id_, tuple(argv.split("|")), message, code)


CASES = [
    # demo
    case("demo-negative-seed", "demo|--seed|-1",
         r"argument --seed: must be a seed, an integer from 0 to 4294967295, got '-1'"),
    case("demo-seed-not-a-number", "demo|--seed|one", r"argument --seed: .*got 'one'"),
    case("demo-unknown-config", "demo|--config|sketchy99|--out|{root}/d1",
         r"unknown config 'sketchy99'; shipped configs: .*mini"),
    case("demo-resume-truncated", "demo|--out|{root}/d2|--resume|{trunc}|TINY",
         r"trunc\.pth is truncated or damaged .*use an intact copy"),
    case("demo-resume-an-index", "demo|--out|{root}/d3|--resume|{g}|TINY",
         r"g\.amaidx is not a checkpoint: it is an amalib gallery index .*"
         r"`amalib retrieve --index .*g\.amaidx`"),
    case("demo-wrong-type", "demo|--set|train.epochs=abc|--out|{root}/d4",
         r"train\.epochs must be an integer, got 'abc' \(str\)"),
    case("demo-out-is-a-file", "demo|--out|{a_file}|TINY",
         r"a_file exists and is not a folder; choose another path"),
    # train
    case("train-unknown-arch", "train|--config|mini|--out|{root}/t1|TINY|--set|"
         "model.arch=vit_huge_nonexistent",
         r"model\.arch: unknown ViT architecture 'vit_huge_nonexistent'; choose one of vit_base"),
    case("train-resume-release-checkpoint", "train|--config|mini|--out|{root}/t2|TINY|"
         "--resume|{release}",
         r"release\.pth was trained with config sketchy21 \(vit_base/16, out_dim 65536, "
         r"benchmark sketchy21\), this run's config has vit_micro/8, out_dim 64, benchmark mini "
         r".*resume with `amalib train --config sketchy21 --resume .*release\.pth` or start a "
         r"new run"),
    case("train-resume-dino-file", "train|--config|mini|--out|{root}/t3|TINY|--resume|{dino}",
         r"mini_backbone\.pth is a DINO-style backbone file .*, not an `amalib train` "
         r"checkpoint; .*--set model\.pretrained=.*mini_backbone\.pth"),
    case("train-resume-supervised", "train|--config|mini|--out|{root}/t4|TINY|"
         "--resume|{supervised}",
         r"supervised\.pth is a supervised pretraining checkpoint .*not an `amalib train` "
         r"checkpoint; continue it with `amalib pretrain --resume"),
    case("train-resume-truncated", "train|--config|mini|--out|{root}/t5|TINY|--resume|{trunc}",
         r"trunc\.pth is truncated or damaged"),
    case("train-resume-incomplete", "train|--config|mini|--out|{root}/t5b|TINY|--resume|{ckpt}",
         r"ckpt\.pth does not hold a complete training state .*no 'student' entry"),
    case("train-without-config", "train|--out|{root}/t6", r"--config is required"),
    case("train-set-not-yaml", "train|--config|mini|--out|{root}/t7|--set|train.lr=[1,",
         r"--set train\.lr=\[1,: '\[1,' is not a YAML value"),
    case("train-batch-size-zero", "train|--config|mini|--out|{root}/t8|TINY|--set|"
         "data.batch_size=0",
         r"data\.batch_size must be an integer >= 1, got 0"),
    case("train-batch-larger-than-data", "train|--config|mini|--out|{root}/t9|TINY|--set|"
         "data.batch_size=999",
         r"data\.batch_size=999 .* is larger than the training set"),
    case("train-impossible-crops", "train|--config|mini|--out|{root}/t9b|TINY|--set|"
         "data.sketch_crops.n_global=0", r"data\.sketch_crops: need n_global >= 1"),
    case("train-switch-not-bool", "train|--config|mini|--out|{root}/t10|--set|"
         "loss.schedule.use_ma=maybe", r"loss\.schedule\.use_ma must be true or false"),
    case("train-list-expected", "train|--config|mini|--out|{root}/t11|--set|"
         "loss.cluster.granularities=5",
         r"loss\.cluster\.granularities must be a list, e\.g\. "
         r"loss\.cluster\.granularities=\[.*\], got 5"),
    case("train-negative-seed", "train|--config|mini|--out|{root}/t12|--set|train.seed=-3",
         r"train\.seed must be an integer >= 0, got -3"),
    case("train-broken-yaml", "train|--config|{broken}|--out|{root}/t13",
         r"broken\.yaml is not valid YAML \(line \d+: .*\); fix the file"),
    case("train-yaml-wrong-type", "train|--config|{typed}|--out|{root}/t14",
         r"train\.epochs must be an integer, got 'abc'"),
    case("train-config-is-an-image", "train|--config|{trunc_png}|--out|{root}/t15",
         r"trunc\.png is not a YAML config \(not UTF-8 text\)"),
    case("train-pretrained-truncated", "train|--config|mini|--out|{root}/t16|TINY|--set|"
         "model.pretrained={trunc}",
         r"model\.pretrained: .*trunc\.pth is truncated or damaged"),
    case("train-pretrained-is-an-index", "train|--config|mini|--out|{root}/t17|TINY|--set|"
         "model.pretrained={g}",
         r"model\.pretrained: .*g\.amaidx is not a DINO checkpoint: it is an amalib gallery "
         r"index"),
    case("train-unknown-option", "train|--config|mini|--out|{root}/t18|--epochs|3",
         r"unrecognized arguments: --epochs 3 \(see `amalib train --help`\)"),
    # pretrain
    case("pretrain-unknown-objective", "pretrain|--out|{root}/p1|TINY|--set|"
         "pretrain.objective=magic", r"pretrain\.objective must be 'dino' or 'supervised'"),
    case("pretrain-resume-train-checkpoint", "pretrain|--out|{root}/p2|TINY|--resume|{ckpt}",
         r"ckpt\.pth is an `amalib train` checkpoint, not a supervised pretraining checkpoint"),
    case("pretrain-resume-truncated", "pretrain|--out|{root}/p3|TINY|--resume|{trunc}",
         r"trunc\.pth is truncated or damaged"),
    case("pretrain-export-to-a-folder", "pretrain|--out|{root}/p4|TINY|--export|{folder}",
         r"--export .*folder is a folder; give a file name"),
    # eval
    case("eval-truncated-checkpoint", "eval|--checkpoint|{trunc}",
         r"trunc\.pth is truncated or damaged \(PytorchStreamReader failed reading zip "
         r"archive: failed finding central directory\)"),
    case("eval-checkpoint-cut-short", "eval|--checkpoint|{cut}",
         r"cut\.pth is truncated or damaged \(its archive cannot be read\); .*use an intact copy"),
    case("eval-index-as-checkpoint", "eval|--checkpoint|{g}",
         r"g\.amaidx is not a checkpoint: it is an amalib gallery index \(`amalib index "
         r"build`\); use it with `amalib retrieve --index"),
    case("eval-dino-file", "eval|--checkpoint|{dino}",
         r"mini_backbone\.pth is a DINO-style backbone file \(official DINO weights or `amalib "
         r"pretrain --export`\), not an `amalib train` checkpoint"),
    case("eval-empty-file", "eval|--checkpoint|{empty}",
         r"empty\.pth is not a checkpoint: it is an empty file"),
    case("eval-text-file", "eval|--checkpoint|{bad}",
         r"bad\.png is not a checkpoint \(not a PyTorch file\)"),
    case("eval-run-folder", "eval|--checkpoint|{run}",
         r"run is a folder, not a checkpoint file; pass .*run/checkpoint\.pth"),
    case("eval-missing-checkpoint", "eval|--checkpoint|{missing}",
         r"checkpoint not found: .*nowhere/x"),
    case("eval-model-override", "eval|--checkpoint|{ckpt}|--set|model.arch=vit_base",
         r"--set model\.arch=vit_base: eval reads the model from the checkpoint"),
    case("eval-hub-k-zero", "eval|--checkpoint|{ckpt}|--hub-k|0",
         r"argument --hub-k: must be an integer >= 1, got '0'"),
    case("eval-json-to-a-folder", "eval|--checkpoint|{ckpt}|--json|{folder}",
         r"--json .*folder is a folder; give a file name"),
    case("eval-unknown-protocol", "eval|--checkpoint|{ckpt}|--protocol|xyz",
         r"argument --protocol: invalid choice: 'xyz'"),
    # index build / info
    case("index-build-from-an-index", "index|build|--checkpoint|{g}|--out|{root}/x.amaidx",
         r"g\.amaidx is not a checkpoint: it is an amalib gallery index"),
    case("index-build-missing-gallery", "index|build|--checkpoint|{ckpt}|--gallery|{missing}|"
         "--out|{root}/x.amaidx", r"gallery not found: .*nowhere/x is neither a folder"),
    case("index-build-bad-param", "index|build|--checkpoint|{ckpt}|--param|nprobe=abc|"
         "--out|{root}/x.amaidx", r"--param nprobe=abc: expected KEY=INTEGER"),
    case("index-build-out-is-a-folder", "index|build|--checkpoint|{ckpt}|--out|{folder}",
         r"--out .*folder is a folder"),
    case("index-info-of-a-checkpoint", "index|info|{ckpt}",
         r"ckpt\.pth is not an amalib gallery index: it is a PyTorch checkpoint; pass it as "
         r"--checkpoint, or build an index from it with `amalib index build --checkpoint"),
    case("index-info-truncated", "index|info|{trunc_amaidx}",
         r"trunc\.amaidx is truncated or damaged \(an incomplete archive\); rebuild it"),
    # retrieve
    case("retrieve-sketch-not-an-image", "retrieve|--index|{g}|--sketch|{bad}",
         r"bad\.png is not a readable image \(not an image file PIL recognises\); give a "
         r"sketch as a PNG or JPEG file"),
    case("retrieve-truncated-sketch", "retrieve|--index|{g}|--sketch|{trunc_png}",
         r"trunc\.png is not a readable image \(image file is truncated"),
    case("retrieve-sketch-not-an-image-no-index", "retrieve|--checkpoint|{ckpt}|--sketch|{bad}",
         r"bad\.png is not a readable image"),
    case("retrieve-not-an-index", "retrieve|--index|{notindex}|--sketch|{ok}",
         r"notindex\.amaidx is not an amalib gallery index \(not an \.npz archive\); build one "
         r"with `amalib index build"),
    case("retrieve-checkpoint-as-index", "retrieve|--index|{ckpt}|--sketch|{ok}",
         r"ckpt\.pth is not an amalib gallery index: it is a PyTorch checkpoint"),
    case("retrieve-strokes-wrong-shape", "retrieve|--index|{g}|--strokes|{wrong_shape}",
         r"wrong_shape\.json: stroke 0: expected a list of \[x, y\] number pairs, got "
         r"\['n', 'o'\]; a drawing is \{\"canvas_size\": 256"),
    case("retrieve-strokes-triples", "retrieve|--index|{g}|--strokes|{triples}",
         r"triples\.json: stroke 0: expected a list of \[x, y\] number pairs, got an array of "
         r"shape \(2, 3\)"),
    case("retrieve-strokes-text", "retrieve|--index|{g}|--strokes|{text_strokes}",
         r"ünïcødé/text_strokes\.json: strokes must be a list of strokes"),
    case("retrieve-strokes-bad-canvas", "retrieve|--index|{g}|--strokes|{canvas}",
         r"canvas\.json: canvas_size must be a positive number or \[width, height\], got 'big'"),
    case("retrieve-strokes-no-strokes-key", "retrieve|--index|{g}|--strokes|{no_strokes}",
         r"no_strokes\.json: expected \{\"strokes\": .*found the keys \['lines'\]"),
    case("retrieve-strokes-infinite", "retrieve|--index|{g}|--strokes|{nan}",
         r"nan\.json: stroke 0: coordinates must be finite numbers"),
    case("retrieve-strokes-binary", "retrieve|--index|{g}|--strokes|{trunc_png}",
         r"trunc\.png is not a JSON drawing \(not UTF-8 text\)"),
    case("retrieve-k-zero", "retrieve|--index|{g}|--sketch|{ok}|--k|0",
         r"argument --k/--topk: must be an integer >= 1, got '0'"),
    case("retrieve-picture-format", "retrieve|--index|{g}|--sketch|{ok}|--out|{root}/top.xyz",
         r"--out .*top\.xyz: a picture needs one of the suffixes .*\.png"),
    case("retrieve-truncated-checkpoint", "retrieve|--index|{g}|--checkpoint|{trunc}|--sketch|{ok}",
         r"trunc\.pth is truncated or damaged"),
    case("retrieve-other-model", "retrieve|--index|{g}|--checkpoint|{other}|--sketch|{ok}",
         r"other\.pth is not the model .*g\.amaidx was built with"),
    case("retrieve-unknown-label", "retrieve|--index|{g}|--sketch|{ok}|--label|unicorn",
         r"unknown class 'unicorn'"),
    case("retrieve-nothing-to-search", "retrieve|--sketch|{ok}",
         r"retrieve needs --index \(a built gallery\) or --checkpoint"),
    case("retrieve-two-queries", "retrieve|--index|{g}|--sketch|{ok}|--strokes|{nan}",
         r"argument --strokes: not allowed with argument --sketch"),
    # prepare
    case("prepare-unknown-benchmark", "prepare|sketchy99|--root|{root}",
         r"unknown benchmark 'sketchy99'; valid names: .*tuberlin"),
    case("prepare-build-from-missing", "prepare|tuberlin|--root|{root}/data|--build-from|"
         "{missing}", r"could not build the file lists from .*nowhere/x"),
    # ablate
    case("ablate-negative-seed", "ablate|--seeds|0|-1", r"argument --seeds: .*got '-1'"),
    case("ablate-unknown-row", "ablate|--rows|bogus|--out|{root}/a1",
         r"--rows: unknown \['bogus'\]; choose from sd, sd\+cc"),
    case("ablate-ama-runs-placeholder", "ablate|--out|{root}/a2|--rows|ama|--seeds|0|"
         "--ama-runs|{root}/demo_{{sed}}|TINY",
         r"--ama-runs .*demo_\{sed\}: the only placeholder is \{seed\}"),
    case("ablate-ama-runs-missing", "ablate|--out|{root}/a3|--rows|ama|--seeds|0|"
         "--ama-runs|{root}/demo_{{seed}}|TINY",
         r"demo_0 is not a finished demo .* run `amalib demo --seed 0 --out"),
]


def _argv(case_: Case, files: dict) -> list[str]:
    out = []
    for arg in case_.argv:
        if arg == "TINY":
            out += [a for o in tiny_overrides(files["tiny_root"]) for a in ("--set", o)]
        else:
            out.append(arg.format(**files))
    return out


def _run(capsys, argv: list[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as stop:  # the argument parser's usage errors
        code = stop.code
    return code, capsys.readouterr().err


def _assert_one_line(err: str, message: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("error: "), lines[0]
    assert re.search(message, lines[0]), f"{message!r} not in {lines[0]!r}"
    for leak in ("allow_pickle", "weights_only=False", "unsafe"):
        assert leak not in lines[0], lines[0]


def test_the_table_covers_every_command():
    commands = {c.argv[0] for c in CASES}
    assert commands == {"demo", "train", "pretrain", "eval", "index", "prepare", "retrieve",
                        "ablate"}
    assert len(CASES) + len(NOTEBOOK_CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case_", CASES, ids=lambda c: c.id)
def test_bad_input_is_one_line_with_the_fix(case_, files, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # nothing a case writes lands in the work tree
    code, err = _run(capsys, _argv(case_, files))
    assert code == case_.code, err
    _assert_one_line(err, case_.message)


# ------------------------------------------------------------------------- the real entry point


def _console_script() -> str | None:
    script = Path(sys.executable).with_name("amalib")
    return str(script) if script.is_file() else shutil.which("amalib")


@pytest.mark.parametrize("argv, message", [
    ("retrieve|--index|{g}|--sketch|{bad}", r"bad\.png is not a readable image"),
    ("eval|--checkpoint|{trunc}", r"trunc\.pth is truncated or damaged"),
])
def test_installed_script_answers_in_one_line(argv, message, files, tmp_path):
    script = _console_script()
    if script is None:
        pytest.skip("the amalib console script is not installed")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([script, *argv.format(**files).split("|")], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    _assert_one_line(done.stderr, message)


def test_debug_shows_the_traceback_too(files, capsys):
    code, err = _run(capsys, ["eval", "--checkpoint", files["trunc"], "--debug"])
    assert code == 2 and "Traceback" in err and "CheckpointError" in err
    assert err.strip().splitlines()[-1].startswith("error: ")
    code, err = _run(capsys, ["--debug", "index", "info", files["ckpt"]])
    assert code == 2 and "Traceback" in err


def test_a_bug_keeps_its_traceback(capsys, monkeypatch):
    import amalib.cli

    def broken(_args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(amalib.cli, "_cmd_prepare", broken)
    with pytest.raises(ZeroDivisionError):
        main(["prepare", "mini", "--root", "x"])
    assert "internal error (a bug, not a mistake in your input)" in capsys.readouterr().err


def test_a_full_disk_is_one_line_with_status_1(capsys, monkeypatch):
    import errno

    import amalib.cli

    def full(_args):
        raise OSError(errno.ENOSPC, "No space left on device", "runs/x/checkpoint.pth")

    monkeypatch.setattr(amalib.cli, "_cmd_prepare", full)
    code, err = _run(capsys, ["prepare", "mini", "--root", "x"])
    assert code == 1
    _assert_one_line(err, r"no space left on the device while writing runs/x/checkpoint\.pth")


# ------------------------------------------------------------------------- notebook helpers


def _pad(files):
    """The sketch pad's pieces: the checkpoint's backbone, its transform, a small gallery."""
    from amalib.retrieval.evaluate import load_trained_backbone
    from amalib.retrieval.index import GalleryIndex
    from amalib.retrieval.sketch_query import sketch_query_settings

    backbone, cfg = load_trained_backbone(files["ckpt"])
    gallery = GalleryIndex.build(torch.randn(4, backbone.num_features), ["a", "b", "c", "d"],
                                 labels=[0, 0, 1, 1], class_names=["cat", "dog"])
    return backbone, sketch_query_settings(cfg)["transform"], gallery


def _select(**kwargs):
    from amalib.tutorial import select_profile

    return select_profile(**kwargs)


def _load_or_train(files, tmp, *, profile=None, candidates=None, damaged_own=False):
    from amalib.tutorial import load_or_train, select_profile

    profile = profile if profile is not None else select_profile("cpu-mini")
    if damaged_own:
        own = Path(tmp) / "runs" / "tutorial" / "cpu-mini" / "checkpoint.pth"
        own.parent.mkdir(parents=True)
        shutil.copy(files["trunc"], own)
    return load_or_train(profile, candidates=candidates, log=lambda _line: None)


def _query(files, strokes=((0, 0), (30, 40)), **kwargs):
    from amalib.retrieval.sketch_query import query_strokes

    backbone, transform, gallery = _pad(files)
    strokes = [list(strokes)] if strokes and isinstance(strokes[0], tuple) else strokes
    return query_strokes(backbone, strokes, gallery, transform=transform, image_size=32,
                         **kwargs)


NOTEBOOK_CASES = [
    ("select-unknown-profile", lambda f, t: _select(name="gpu"), ConfigError,
     r"unknown profile 'gpu'; choose one of \('auto', 'cpu-mini'"),
    ("select-bad-override", lambda f, t: _select(overrides=["train.lr=abc"]), ConfigError,
     r"train\.lr must be a number, got 'abc'"),
    ("select-override-string", lambda f, t: _select(overrides="train.epochs=3"), ConfigError,
     r"overrides must be a list of 'key\.sub=value' strings"),
    ("select-unknown-benchmark", lambda f, t: _select(name="gpu-real", benchmark="sketchy99"),
     ConfigError, r"unknown real benchmark 'sketchy99' for PROFILE = 'gpu-real'"),
    ("load-or-train-dino-file", lambda f, t: _load_or_train(f, t, candidates=[f["dino"]]),
     CheckpointError, r"mini_backbone\.pth is a DINO-style backbone file"),
    ("load-or-train-damaged-own-run", lambda f, t: _load_or_train(f, t, damaged_own=True),
     CheckpointError, r"checkpoint\.pth is truncated or damaged .*delete "
                      r"runs/tutorial/cpu-mini/checkpoint\.pth to train it again"),
    ("load-or-train-not-a-profile", lambda f, t: _load_or_train(f, t, profile="cpu-mini"),
     ConfigError, r"load_or_train needs the Profile that select_profile\(\.\.\.\) returns"),
    ("pad-strokes-wrong-shape", lambda f, t: _query(f, strokes=[["n", "o"]]), InputError,
     r"stroke 0: expected a list of \[x, y\] number pairs, got \['n', 'o'\]"),
    ("pad-empty-drawing", lambda f, t: _query(f, strokes=[]), InputError,
     r"empty drawing: there is no stroke to render"),
    ("pad-k-zero", lambda f, t: _query(f, k=0), InputError,
     r"k is how many photos to show: an integer >= 1, got 0"),
    ("pad-unknown-class", lambda f, t: _query(f, query_label="unicorn"), InputError,
     r"unknown class 'unicorn'; the gallery's classes: cat, dog"),
]


@pytest.mark.parametrize("name, call, error, message", NOTEBOOK_CASES,
                         ids=[c[0] for c in NOTEBOOK_CASES])
def test_notebook_helpers_raise_one_line_user_errors(name, call, error, message, files,
                                                     tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the notebooks' runs/ folder is relative
    with pytest.raises(error) as info:
        call(files, tmp_path)
    assert isinstance(info.value, AmalibError)
    text = str(info.value)
    assert "\n" not in text and re.search(message, text), text


def test_gpu_real_profile_lists_what_is_missing(tmp_path):
    from amalib.tutorial import ProfileUnavailableError, select_profile

    with pytest.raises(ProfileUnavailableError, match=r"missing: data root .*nowhere"):
        select_profile("gpu-real", benchmark="tuberlin", data_root=tmp_path / "nowhere",
                       weights=tmp_path / "w.pth")


# ------------------------------------------------------------- seeded sweeps of the two parsers

_VALUES = ["abc", "ünïcødé text", "a path/with spaces", "-1", "0", "2.5", "1e-3", "true", "no",
           "null", "~", "[]", "[1, 2]", "[a, 'b']", "{}", "{x: 1}", "[1,", "{x", "'unclosed",
           ": :", "- a", "1e999", "-0.0", "0x10", "   ", "", "😀", "[[1, 2], [3]]"]


def _leaves(config: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in config.items():
        if isinstance(value, dict) and value:
            keys += _leaves(value, f"{prefix}{key}.")
        else:
            keys.append(prefix + key)
    return keys


def test_config_overrides_of_any_value_are_taken_or_refused_in_one_line():
    """300 random ``--set`` items: right and wrong types, missing and extra keys, unicode and
    spaces; each is applied or refused with a one-line ConfigError naming the key — never
    another exception."""
    rng = random.Random(28)
    base = load_config("mini")
    keys = _leaves(base)
    refused = 0
    for _ in range(300):
        key = rng.choice(keys)
        roll = rng.random()
        if roll < 0.1:  # a key that is not there (a typo, an extra level, a missing part)
            key = rng.choice([key + "_x", key + ".sub", key.rsplit(".", 1)[0] + ".nope", "nope"])
        item = f"{key}={rng.choice(_VALUES)}" if roll < 0.95 else key  # no '=' at all
        try:
            out = apply_overrides(base, [item])
        except ConfigError as err:
            refused += 1
            text = str(err)
            assert "\n" not in text and (key.split(".")[0] in text or item in text), text
        else:
            assert set(_leaves(out)) >= set(keys) - {key}
    assert 50 < refused < 300  # both answers occur


def _random_json(rng: random.Random, depth: int = 0):
    kinds = ["int", "float", "str", "bool", "null", "list", "dict"]
    kind = rng.choice(kinds if depth < 4 else kinds[:5])
    if kind == "int":
        return rng.randint(-5, 300)
    if kind == "float":
        return rng.choice([rng.uniform(-1, 300), float("inf"), float("nan")])
    if kind == "str":
        return rng.choice(["n", "x y", "ü", ""])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["strokes", "canvas_size", "other"]): _random_json(rng, depth + 1)
            for _ in range(rng.randint(0, 3))}


def test_strokes_files_of_any_shape_are_read_or_refused_in_one_line(tmp_path):
    """300 random JSON files (and a few well-formed ones) under a path with spaces and unicode:
    each is a drawing of (n, 2) finite points or a one-line InputError naming the file."""
    from amalib.data.strokes import load_strokes

    rng = random.Random(28)
    folder = tmp_path / "dessins à main levée"
    folder.mkdir()
    accepted = 0
    for i in range(300):
        content = _random_json(rng)
        if i % 10 == 0:  # some good drawings among them
            content = {"canvas_size": rng.choice([256, [300, 200], None]),
                       "strokes": [[[rng.uniform(0, 255), rng.uniform(0, 255)]
                                    for _ in range(rng.randint(1, 5))]]}
        path = folder / f"drawing {i} ✏️.json"
        path.write_text(json.dumps(content))
        try:
            strokes, canvas = load_strokes(path)
        except InputError as err:
            text = str(err)
            assert "\n" not in text and text.startswith(str(path)), text
        else:
            accepted += 1
            assert all(s.ndim == 2 and s.shape[1] == 2 and np.isfinite(s).all() for s in strokes)
    assert accepted >= 30
