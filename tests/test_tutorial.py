"""Tests of amalib.tutorial: the notebooks' profile switch, run loading and diagnostics."""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from tiny_benchmark import tiny_values

from amalib import tutorial
from amalib.data.benchmarks import get_benchmark
from amalib.tutorial import notebook, profiles


def tiny_profile(root) -> tutorial.Profile:
    """The cpu-mini profile scaled down to a 4-class benchmark and a 2-block ViT."""
    values = tiny_values(root)
    return tutorial.Profile(
        name="tiny", config_name="mini",
        overrides=tuple(f"{k}={v}" for k, v in values.items()),
        short_run=TINY_RUN, full_run=TINY_RUN, device="cpu", description="tiny",
    )


TINY_RUN = ("train.epochs=2", "train.max_steps_per_epoch=1",
            "loss.schedule.cc_start_epoch=1", "loss.schedule.cc_ramp_end_epoch=1",
            "loss.schedule.ma_start_epoch=1", "loss.schedule.sg_start_epoch=1")


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ------------------------------------------------------------------------------ working directory


def make_checkout(root: Path) -> Path:
    (root / "amalib").mkdir(parents=True)
    (root / "amalib" / "__init__.py").write_text("")
    (root / "notebooks").mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'amalib'\n")
    return root


def test_find_project_root_from_notebooks_and_deeper(tmp_path):
    root = make_checkout(tmp_path / "clone")
    assert tutorial.find_project_root(root / "notebooks") == root.resolve()
    deep = root / "notebooks" / "a" / "b"
    deep.mkdir(parents=True)
    assert tutorial.find_project_root(deep) == root.resolve()
    assert tutorial.find_project_root(root) == root.resolve()


def test_find_project_root_outside_a_checkout(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")  # a project, but not amalib's layout
    assert tutorial.find_project_root(tmp_path) is None


def test_enter_project_root_changes_directory(tmp_path, monkeypatch):
    root = make_checkout(tmp_path / "clone")
    monkeypatch.chdir(root / "notebooks")
    assert tutorial.enter_project_root() == root.resolve()
    assert Path.cwd() == root.resolve()


def test_enter_project_root_keeps_directory_outside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.delenv(tutorial.HOME_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    assert tutorial.enter_project_root() == tmp_path.resolve()
    assert Path.cwd() == tmp_path.resolve()


def test_outside_a_checkout_amalib_home_is_the_work_folder(tmp_path, monkeypatch):
    home = tmp_path / "home" / "amalib"
    monkeypatch.setenv(tutorial.HOME_VARIABLE, str(home))
    monkeypatch.chdir(tmp_path)
    assert tutorial.enter_project_root() == home.resolve() and home.is_dir()
    assert Path.cwd() == home.resolve()
    # A checkout wins over AMALIB_HOME: its data/ and runs/ are the project's.
    root = make_checkout(tmp_path / "clone")
    assert tutorial.work_folder(root / "notebooks") == root.resolve()


def test_an_unwritable_folder_is_not_the_work_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(tutorial.HOME_VARIABLE, raising=False)
    monkeypatch.setattr(notebook.os, "access", lambda path, mode: False)
    assert tutorial.work_folder(tmp_path) == Path.home() / "amalib"


def test_print_relative_hides_machine_paths(in_tmp, capsys):
    import amalib

    package = Path(amalib.__file__).resolve().parent
    tutorial.print_relative(f"loaded {package / 'assets' / 'w.pth'} into {in_tmp.resolve() / 'runs'}")
    assert capsys.readouterr().out == "loaded amalib/assets/w.pth into runs\n"


def test_this_repository_is_found_from_its_notebooks_folder():
    here = Path(__file__).resolve().parents[1]
    assert tutorial.find_project_root(here / "notebooks") == here


# ------------------------------------------------------------------------------ profiles


def test_cpu_profile_config_and_short_run():
    profile = tutorial.select_profile("cpu-mini", overrides=["train.seed=3"])
    cfg = profile.config()
    assert cfg["benchmark"] == "mini" and cfg["data"]["num_workers"] == 0
    assert cfg["train"]["seed"] == 3
    short = profile.short_run_config()
    assert short["train"]["epochs"] == 3 and short["train"]["max_steps_per_epoch"] == 4
    assert short["data"]["batch_size"] == 16
    assert profile.run_dir == Path("runs/tutorial/cpu-mini")
    # The last epoch of the short run has every AMA term switched on.
    from amalib.train.objective import ObjectiveSchedule

    weights = ObjectiveSchedule.from_config(short["loss"]["schedule"]).weights(2)
    assert all(w > 0 for w in weights.values())


def test_cpu_full_run_is_the_demos_run():
    """TRAIN = True on cpu-mini trains what `amalib demo --seed 0` trains, workers included (the
    worker count decides the augmentation's random streams), while the short runs load in-process."""
    from amalib.config import load_config

    profile = tutorial.select_profile("cpu-mini")
    demo = load_config("mini", ["train.seed=0"])  # as amalib.experiments.demo resolves it
    assert demo["data"]["num_workers"] > 0
    assert profile.full_run_config() == demo
    assert profile.config()["data"]["num_workers"] == 0
    # A user's own worker count is kept in the full run too.
    own = tutorial.select_profile("cpu-mini", overrides=["data.num_workers=1"])
    assert own.full_run_config()["data"]["num_workers"] == 1


def test_unknown_profile_is_an_error():
    with pytest.raises(ValueError, match="cpu-mini"):
        tutorial.select_profile("tpu")


def test_gpu_profile_without_files_names_them_and_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(profiles, "gpu_name", lambda: None)
    with pytest.raises(tutorial.ProfileUnavailableError) as info:
        tutorial.select_profile("gpu-real", benchmark="sketchy25",
                                data_root=tmp_path / "nowhere", weights=tmp_path / "w.pth")
    message = str(info.value)
    assert "nowhere" in message and "w.pth" in message
    assert "no CUDA GPU" in message
    assert "dino_vitbase16_pretrain" in message and "amalib prepare sketchy25" in message
    assert "cpu-mini" in message


def fake_benchmark(root: Path, name: str, skip: tuple[str, ...] = ()) -> None:
    spec = get_benchmark(name)
    for split, (list_file, class_file, _) in spec.splits().items():
        for rel in (list_file, class_file):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            if split not in skip:
                (root / rel).write_text("")


def test_missing_gpu_profile_files_lists_exactly_what_is_missing(tmp_path):
    fake_benchmark(tmp_path, "tuberlin", skip=("photo_test",))
    weights = tmp_path / "dino.pth"
    weights.write_bytes(b"")
    missing = tutorial.missing_gpu_profile_files("tuberlin", tmp_path, weights)
    assert len(missing) == 1 and "photo_test" in missing[0]
    assert "ImageResized_ready_filelist_zero.txt" in missing[0]
    weights.unlink()
    assert len(tutorial.missing_gpu_profile_files("tuberlin", tmp_path, weights)) == 2
    assert tutorial.missing_gpu_profile_files("tuberlin", None, None)[0].startswith("data root")


def test_gpu_profile_with_files_and_gpu(tmp_path, monkeypatch):
    fake_benchmark(tmp_path, "sketchy21")
    weights = tmp_path / "dino.pth"
    weights.write_bytes(b"")
    monkeypatch.setattr(profiles, "gpu_name", lambda: "Test GPU")
    profile = tutorial.select_profile("gpu-real", benchmark="sketchy21", data_root=tmp_path,
                                      weights=weights)
    assert profile.device == "cuda" and profile.config_name == "sketchy21"
    cfg = profile.config()
    assert cfg["data"]["root"] == str(tmp_path) and cfg["model"]["pretrained"] == str(weights)
    assert cfg["model"]["arch"] == "vit_base"
    short = profile.short_run_config()
    assert short["train"]["epochs"] == 3 and short["loss"]["schedule"]["ma_start_epoch"] == 2


def test_gpu_profile_with_files_but_no_gpu(tmp_path, monkeypatch):
    fake_benchmark(tmp_path, "sketchy21")
    weights = tmp_path / "dino.pth"
    weights.write_bytes(b"")
    monkeypatch.setattr(profiles, "gpu_name", lambda: None)
    with pytest.raises(tutorial.ProfileUnavailableError, match="no CUDA GPU") as info:
        tutorial.select_profile("gpu-real", benchmark="sketchy21", data_root=tmp_path,
                                weights=weights)
    assert "missing" not in str(info.value).split("How to get")[0]


def test_auto_profile_is_the_mini_benchmark_on_the_gpu_when_there_is_one(monkeypatch):
    monkeypatch.setattr(profiles, "gpu_name", lambda: None)
    cpu = tutorial.select_profile("auto")
    assert cpu == tutorial.select_profile("cpu-mini") and cpu.device == "cpu"
    with pytest.raises(tutorial.ProfileUnavailableError, match="needs a CUDA GPU"):
        tutorial.select_profile("gpu-mini")
    monkeypatch.setattr(profiles, "gpu_name", lambda: "Test GPU")
    gpu = tutorial.select_profile("auto")
    assert gpu.name == "gpu-mini" and gpu.device == "cuda" and gpu.config_name == "mini"
    assert gpu.run_dir == Path("runs/tutorial/gpu-mini")
    # On a GPU the notebooks' run is the full mini preset (what `amalib demo` trains).
    assert gpu.short_run_config() == tutorial.select_profile("cpu-mini").config(
        "data.num_workers=" + str(gpu.config()["data"]["num_workers"]))


def test_the_environment_forces_the_profile_and_the_device(monkeypatch):
    monkeypatch.setattr(profiles, "gpu_name", lambda: None)
    monkeypatch.setenv("AMALIB_PROFILE", "gpu-mini")
    monkeypatch.setenv("AMALIB_DEVICE", "cpu")
    lines = []
    profile = tutorial.select_profile("cpu-mini", log=lines.append)
    # the GPU profile's code path (its full preset as the run) on the CPU, and it says so
    assert profile.name == "gpu-mini" and profile.device == "cpu" and profile.short_run == ()
    assert profile.run_dir == Path("runs/tutorial/gpu-mini")
    assert lines == ["profile forced to 'gpu-mini' by AMALIB_PROFILE (the cell says 'cpu-mini')",
                     "device forced to 'cpu' by AMALIB_DEVICE (profile gpu-mini)"]
    assert "forced" in profile.description
    # the profile alone, with the cell's device
    monkeypatch.delenv("AMALIB_DEVICE")
    with pytest.raises(tutorial.ProfileUnavailableError, match="needs a CUDA GPU"):
        tutorial.select_profile("auto", log=lines.append)
    monkeypatch.setenv("AMALIB_PROFILE", "cpu-mini")
    assert tutorial.select_profile("gpu-mini", log=lambda _l: None) == \
        tutorial.select_profile("cpu-mini", log=lambda _l: None)


def test_a_forced_cuda_device_needs_a_gpu_and_a_bad_value_is_named(monkeypatch):
    monkeypatch.setattr(profiles, "gpu_name", lambda: None)
    monkeypatch.setenv("AMALIB_DEVICE", "cuda")
    with pytest.raises(tutorial.ProfileUnavailableError, match="AMALIB_DEVICE=cuda"):
        tutorial.select_profile("cpu-mini")
    monkeypatch.setenv("AMALIB_DEVICE", "tpu")
    with pytest.raises(ValueError, match="AMALIB_DEVICE='tpu'"):
        tutorial.select_profile("cpu-mini")
    monkeypatch.delenv("AMALIB_DEVICE")
    monkeypatch.setenv("AMALIB_PROFILE", "gpu-big")
    with pytest.raises(ValueError, match="AMALIB_PROFILE='gpu-big'"):
        tutorial.select_profile("cpu-mini")
    monkeypatch.setattr(profiles, "gpu_name", lambda: "Test GPU")
    monkeypatch.setenv("AMALIB_PROFILE", "cpu-mini")
    monkeypatch.setenv("AMALIB_DEVICE", "cuda")
    assert tutorial.select_profile("auto", log=lambda _l: None).device == "cuda"


def test_gpu_real_forced_onto_the_cpu_still_needs_its_files(tmp_path, monkeypatch):
    fake_benchmark(tmp_path, "sketchy21")
    weights = tmp_path / "dino.pth"
    weights.write_bytes(b"")
    monkeypatch.setattr(profiles, "gpu_name", lambda: None)
    monkeypatch.setenv("AMALIB_DEVICE", "cpu")
    profile = tutorial.select_profile("gpu-real", benchmark="sketchy21", data_root=tmp_path,
                                      weights=weights, log=lambda _l: None)
    assert profile.device == "cpu" and profile.full_run == tutorial.GPU_SHORT_RUN
    with pytest.raises(tutorial.ProfileUnavailableError, match="missing") as info:
        tutorial.select_profile("gpu-real", benchmark="sketchy21", data_root=tmp_path / "no",
                                weights=weights, log=lambda _l: None)
    assert "no CUDA GPU" not in str(info.value)


# ------------------------------------------------------------------------------ runs


def test_find_trained_run(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    b.mkdir()
    (b / "checkpoint.pth").write_bytes(b"")
    assert tutorial.find_trained_run([a, b]) == b / "checkpoint.pth"
    assert tutorial.find_trained_run([b / "checkpoint.pth"]) == b / "checkpoint.pth"
    assert tutorial.find_trained_run([a]) is None


def test_load_or_train_trains_then_reuses_then_retrains_a_stale_run(in_tmp, tiny_root):
    profile = tiny_profile(tiny_root)
    lines = []
    # Nothing on disk, and the shipped model is of another benchmark (the mini-benchmark's
    # generator parameters): the profile's full run is trained.
    backbone, cfg, checkpoint = tutorial.load_or_train(profile, log=lines.append)
    assert checkpoint == profile.full_run_dir / "checkpoint.pth" and checkpoint.is_file()
    assert lines[0] == "no trained run found for tiny"
    assert "training the full tiny run (2 epochs of at most 1 steps)" in lines[-1]
    assert cfg == profile.full_run_config()
    x = torch.zeros(2, 3, 32, 32)
    first = backbone(x)

    lines.clear()
    again, _, _ = tutorial.load_or_train(profile, log=lines.append)
    assert lines == [f"loaded the notebooks' full run {checkpoint.as_posix()} (after 2 epochs)"]
    torch.testing.assert_close(again(x), first)

    # TRAIN = True trains again even though a run is there.
    lines.clear()
    tutorial.load_or_train(profile, train=True, log=lines.append)
    assert len(lines) == 1 and lines[0].startswith("training the full tiny run")

    # A run of another config in the notebooks' folder is replaced, not silently used.
    other = tutorial.Profile(**{**profile.__dict__, "full_run": profile.full_run
                                + ("train.seed=5",)})
    lines.clear()
    tutorial.load_or_train(other, log=lines.append)
    assert lines[0].startswith(f"not using {checkpoint.as_posix()}: its config")  # said, not silent
    assert "no trained run found" in lines[1] and "training" in lines[-1]
    metrics = (other.full_run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 2  # the old run's lines were not kept


def test_load_or_train_uses_a_candidate_of_the_same_benchmark(in_tmp, tiny_root):
    profile = tiny_profile(tiny_root)
    tutorial.load_or_train(profile, log=lambda _l: None)
    demo = in_tmp / "runs" / "demo" / "train"
    demo.parent.mkdir(parents=True)
    os.replace(profile.full_run_dir, demo)
    lines = []
    _, _, checkpoint = tutorial.load_or_train(profile, log=lines.append)
    assert checkpoint == Path("runs/demo/train/checkpoint.pth")
    assert lines == ["loaded runs/demo/train/checkpoint.pth"]


def test_load_or_train_loads_the_shipped_model_on_a_fresh_checkout(in_tmp):
    profile = tutorial.select_profile("cpu-mini")
    lines = []
    backbone, cfg, checkpoint = tutorial.load_or_train(profile, log=lines.append)
    assert checkpoint == tutorial.SHIPPED_MODEL == "ama_mini"
    assert len(lines) == 1 and "ships with amalib, ama_mini" in lines[0]
    assert "amalib demo --seed 0" in lines[0] and "TRAIN = True" in lines[0]
    assert cfg["benchmark"] == "mini" and cfg["train"]["epochs"] == 6
    assert all(p.dtype == torch.float32 for p in backbone.parameters())
    info = tutorial.shipped_model_info()
    assert [r["epoch"] for r in info["metrics"]] == list(range(6))
    assert info["provenance"]["command"] == "amalib demo --seed 0"
    # notebook 05's short run is not the full run: it is never returned as "trained"
    short = profile.run_dir / "checkpoint.pth"
    short.parent.mkdir(parents=True)
    torch.save({"config": profile.short_run_config(), "teacher": {}, "epoch": 3}, short)
    assert tutorial.load_or_train(profile, log=lambda _l: None)[2] == "ama_mini"


def test_amalib_model_replaces_the_search_of_runs(in_tmp, tiny_root, monkeypatch):
    """make test sets AMALIB_MODEL=ama_mini so that notebook 06 evaluates the model its committed
    outputs show, whatever runs/ holds; TRAIN = True still trains."""
    import shutil

    # tests/conftest.py cleared what `make test` sets for the notebooks it executes
    assert tutorial.MODEL_VARIABLE == "AMALIB_MODEL" and "AMALIB_MODEL" not in os.environ
    profile = tiny_profile(tiny_root)
    _, _, own = tutorial.load_or_train(profile, log=lambda _l: None)  # the notebooks' own run
    elsewhere = in_tmp / "elsewhere" / "checkpoint.pth"
    elsewhere.parent.mkdir()
    shutil.copy(own, elsewhere)
    monkeypatch.setenv("AMALIB_MODEL", str(elsewhere))
    lines = []
    _, cfg, checkpoint = tutorial.load_or_train(profile, log=lines.append)
    assert checkpoint == elsewhere and cfg == profile.full_run_config()  # not the own run
    assert len(lines) == 1 and "AMALIB_MODEL" in lines[0] and str(elsewhere) in lines[0]
    lines.clear()
    tutorial.load_or_train(profile, train=True, log=lines.append)
    assert lines[0].startswith("training the full tiny run")
    # A model of another benchmark cannot serve the profile: said, not used.
    monkeypatch.setenv("AMALIB_MODEL", "ama_mini")
    with pytest.raises(ValueError, match="AMALIB_MODEL=ama_mini .* profile tiny"):
        tutorial.load_or_train(profile, log=lambda _l: None)
    # A missing file says which variable named it.
    monkeypatch.setenv("AMALIB_MODEL", "runs/nowhere/checkpoint.pth")
    with pytest.raises(FileNotFoundError, match="named by AMALIB_MODEL"):
        tutorial.load_or_train(profile, log=lambda _l: None)


def test_amalib_model_names_the_shipped_model_past_a_demo_run(in_tmp, monkeypatch):
    profile = tutorial.select_profile("cpu-mini")
    demo = in_tmp / "runs" / "demo" / "train" / "checkpoint.pth"
    demo.parent.mkdir(parents=True)
    demo.write_bytes(b"not a checkpoint")  # found first without the variable, and unreadable
    with pytest.raises(Exception, match="checkpoint"):
        tutorial.load_or_train(profile, log=lambda _l: None)
    monkeypatch.setenv("AMALIB_MODEL", tutorial.SHIPPED_MODEL)
    (in_tmp / tutorial.SHIPPED_MODEL).mkdir()  # a folder of that name does not make it a path
    backbone, cfg, checkpoint = tutorial.load_or_train(profile, log=lambda _l: None)
    assert checkpoint == tutorial.SHIPPED_MODEL and cfg["train"]["epochs"] == 6


def test_train_steps_runs_the_engine_step(in_tmp, tiny_root):
    from amalib.train.trainer import Trainer

    profile = tiny_profile(tiny_root)
    cfg = profile.config("train.epochs=1", "loss.schedule.use_cc=false",
                         "loss.schedule.use_ma=false", "loss.schedule.use_sg=false")
    trainer = Trainer(cfg, in_tmp / "run", progress=False, log=lambda _l: None)
    before = [p.detach().clone() for p in trainer.teacher.parameters()]
    history = tutorial.train_steps(trainer, n_steps=2)
    assert len(history) == 2
    assert set(history[0]) == {"total", "sd_sketch", "sd_photo"}
    for h in history:
        assert math.isclose(h["total"], 2 * h["sd_sketch"] + h["sd_photo"], rel_tol=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.teacher.parameters()))
    assert not (in_tmp / "run").exists()  # no evaluation, no checkpoint


def test_eval_sets_and_starting_backbone(tiny_root):
    profile = tiny_profile(tiny_root)
    cfg = profile.config()
    sets = tutorial.eval_sets(cfg)
    assert len(sets["sketch_test"]) == 2 * 3 and len(sets["photo_test"]) == 2 * 4
    assert len(sets["sketch_train"]) == 4 * 8
    a = tutorial.load_starting_backbone(cfg, seed=1)
    b = tutorial.load_starting_backbone(cfg, seed=1)
    x = sets["sketch_test"][0][0][None]
    torch.testing.assert_close(a(x), b(x))
    assert not a.training


def test_starting_backbone_loads_the_named_weights(in_tmp, tiny_root):
    from amalib.models import create_vit, save_backbone

    profile = tiny_profile(tiny_root)
    torch.manual_seed(7)
    stem = profile.config()["model"]["stem"]  # mini's: the CNN-stem hybrid
    source = create_vit("vit_micro", patch_size=8, img_size=32, stem=stem)
    path = save_backbone(source, in_tmp / "w.pth")
    backbone = tutorial.load_starting_backbone(profile.config(f"model.pretrained={path}"))
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(backbone(x), source.eval()(x))


# ------------------------------------------------------------------------------ diagnostics


def purity_reference(assignments, labels):
    total = 0
    for c in set(assignments.tolist()):
        members = [labels[i] for i in range(len(labels)) if assignments[i] == c]
        total += max(members.count(y) for y in set(members))
    return total / len(labels)


@pytest.mark.parametrize("n, k, classes, seed", [(1, 1, 1, 0), (10, 3, 2, 1), (200, 7, 5, 2),
                                                 (64, 64, 4, 3)])
def test_cluster_purity_matches_a_loop(n, k, classes, seed):
    rng = np.random.default_rng(seed)
    a, y = rng.integers(0, k, n), rng.integers(0, classes, n)
    assert tutorial.cluster_purity(a, y) == pytest.approx(purity_reference(a, y))


def test_cluster_purity_by_hand():
    # clusters {0: classes 1,1,2} and {1: classes 2,3}: majorities 2 + 1 out of 5
    assert tutorial.cluster_purity([0, 0, 0, 1, 1], [1, 1, 2, 2, 3]) == pytest.approx(3 / 5)
    assert tutorial.cluster_purity(torch.tensor([4, 4]), torch.tensor([0, 0])) == 1.0
    with pytest.raises(ValueError):
        tutorial.cluster_purity([0, 1], [0])


@pytest.mark.parametrize("n, d, k, seed", [(5, 3, 2, 0), (40, 8, 5, 1), (12, 4, 12, 2)])
def test_nearest_to_prototypes_matches_a_loop(n, d, k, seed):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, d, generator=g)
    feats[1] = feats[0] * 2  # same direction (exactly, after normalising): a tie
    centroids = torch.randn(4, d, generator=g)
    centroids[2] = feats[0]
    clusters = [2, 0, 3]
    got = tutorial.nearest_to_prototypes(feats, centroids, clusters, k=min(k, n))
    for row, c in zip(got, clusters):
        sims = [float(torch.dot(feats[i].double(), centroids[c].double())
                      / feats[i].double().norm()) for i in range(n)]
        expected = sorted(range(n), key=lambda i: (-sims[i], i))[: min(k, n)]
        assert row.tolist() == expected
    assert got[0][:2].tolist() == [0, 1]


@pytest.mark.parametrize("temperature", [0.05, 0.2, 1.0])
def test_own_cluster_confidence_matches_the_formula(temperature):
    g = torch.Generator().manual_seed(0)
    feats = torch.nn.functional.normalize(torch.randn(30, 6, generator=g), dim=1)
    centroids = torch.nn.functional.normalize(torch.randn(5, 6, generator=g), dim=1)
    assign = torch.randint(0, 5, (30,), generator=g)
    got = tutorial.own_cluster_confidence(feats, centroids, assign, temperature)
    for i in range(30):
        logits = [float(feats[i] @ centroids[k]) / temperature for k in range(5)]
        expected = math.exp(logits[assign[i]]) / sum(math.exp(v) for v in logits)
        assert got[i] == pytest.approx(expected, rel=1e-5)


def test_own_cluster_confidence_agrees_with_the_cluster_contrast_filter():
    from amalib.losses import ClusterContrastLoss

    g = torch.Generator().manual_seed(1)
    b = 12
    teacher = torch.nn.functional.normalize(torch.randn(b, 8, generator=g), dim=1)
    student = torch.nn.functional.normalize(torch.randn(3 * b, 8, generator=g), dim=1)
    centroids = torch.nn.functional.normalize(torch.randn(3, 8, generator=g), dim=1)
    ids = torch.tensor([0, 1, 2] * 4)  # every sample has positives
    loss = ClusterContrastLoss(confidence_threshold=0.4, prototype_temperature=0.2)
    loss(student, teacher, ids, [centroids])
    conf = tutorial.own_cluster_confidence(teacher, centroids, ids, 0.2)
    assert loss.stats()["kept_fraction"] == pytest.approx(float((conf > 0.4).mean()))


def test_dino_collapse_experiment_shows_both_collapses():
    steps = 60
    healthy = tutorial.dino_collapse_experiment(steps=steps)
    no_centre = tutorial.dino_collapse_experiment(center_momentum=1.0, steps=steps)
    no_sharpen = tutorial.dino_collapse_experiment(teacher_temp=1.0, steps=steps)
    assert healthy["max_entropy"] == pytest.approx(math.log(64))
    for r in (healthy, no_centre, no_sharpen):
        assert r["batch_entropy"].shape == (steps,) and np.isfinite(r["loss"]).all()
    last = slice(-20, None)
    # Without centring, the targets concentrate on fewer dimensions.
    assert no_centre["batch_entropy"][last].mean() < healthy["batch_entropy"][last].mean() - 0.3
    # Without sharpening, every target is (almost) uniform; with it, targets are confident.
    assert no_sharpen["sample_entropy"][last].mean() > 0.95 * healthy["max_entropy"]
    assert healthy["sample_entropy"][last].mean() < 0.5 * healthy["max_entropy"]
    again = tutorial.dino_collapse_experiment(steps=5)
    np.testing.assert_array_equal(again["loss"], healthy["loss"][:5])


def test_sketch_neighbour_shares_by_hand():
    # Two sketches and three photos on a line of angles; k = 2.
    angle = torch.tensor([0.0, 0.1, 0.05, 1.5, 0.12])
    points = torch.stack([angle.cos(), angle.sin()], dim=1)
    sketches, photos = points[:2], points[2:]
    # sketch 0: neighbours photo(0.05), sketch(0.1); sketch 1: photo(0.12), photo(0.05)
    shares = tutorial.sketch_neighbour_shares(sketches, [0, 1], photos, [0, 1, 1], k=2)
    assert shares["photo"] == pytest.approx((1 + 2) / 4)
    assert shares["photo_same_class"] == pytest.approx((1 + 1) / 4)


def test_the_figures_are_the_viz_functions():
    from amalib.viz import images, matrices

    assert tutorial.to_image is images.to_image
    assert tutorial.plot_multicrop is images.plot_multicrop
    assert tutorial.plot_attention is images.plot_attention
    assert tutorial.plot_image_rows is images.plot_image_rows
    assert tutorial.plot_distance_matrices is matrices.plot_distance_matrices


def test_format_masks_prints_masks_side_by_side():
    same = torch.tensor([[True, False], [False, True]])
    text = tutorial.format_masks({"same": same, "all": np.ones((2, 4), bool)},
                                 row_names=["a", "bb"], block=2)
    assert text.splitlines() == ["     same   all",
                                 " a   1.     11 11",
                                 "bb   .1     11 11"]
    with pytest.raises(ValueError, match="same number of rows"):
        tutorial.format_masks({"x": np.ones((2, 2)), "y": np.ones((3, 2))})
    with pytest.raises(ValueError, match="row names"):
        tutorial.format_masks({"x": np.ones((2, 2))}, row_names=["a"])
