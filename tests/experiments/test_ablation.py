"""The ablation command: every variant switches its terms off, runs are reused, the table."""

from __future__ import annotations

import inspect
import json
import math

import numpy as np
import pytest
import torch
import yaml
from tiny_benchmark import tiny_overrides

from amalib.experiments import ablation
from amalib.experiments.ablation import (
    ABLATIONS,
    AMA,
    ORACLE,
    STARTING_BACKBONE,
    format_ablation,
    gap_closed,
    run_ablation,
)
from amalib.metrics import METRIC_KEYS


@pytest.mark.slow
def test_ablation_trains_each_variant_with_its_terms_off_and_resumes(tiny_root, tmp_path,
                                                                     monkeypatch):
    out = tmp_path / "ablation"
    overrides = tiny_overrides(tiny_root, **{"train.epochs": 1, "train.max_steps_per_epoch": 1})
    table = run_ablation(out, seeds=(0,), overrides=overrides, log=lambda _line: None)

    assert list(table) == [STARTING_BACKBONE, *ABLATIONS, ORACLE]
    for runs in table.values():
        for metrics in runs.values():
            assert set(metrics) == set(METRIC_KEYS)
            assert all(0.0 <= v <= 1.0 for v in metrics.values())
    assert json.loads((out / "ablation.json").read_text()) == table
    results = ablation.load_ablation_results(out / ablation.RESULTS_NAME)
    assert results["config"] == "mini" and results["epochs"] == 1 and results["seeds"] == [0]
    assert results["command"].startswith(f"amalib ablate --config mini --out {out.as_posix()} "
                                         "--seeds 0 --set ")
    assert list(results["table"]) == list(table)
    # The file holds each added term's seed-paired difference (one seed: no interval).
    assert [d["term"] for d in results["paired_differences"]["mAP@all"]] == ["CC", "MA", "SG"]
    rows = results["table"]  # the file's (rounded) values are what it differences
    assert results["paired_differences"]["mAP@all"][0]["differences"] == [round(
        rows["SD + CC"]["0"]["mAP@all"] - rows["SD only"]["0"]["mAP@all"], 6)]
    schedules = {
        name: yaml.safe_load((out / run / "config.yaml").read_text())["loss"]["schedule"]
        for name, run in [("SD only", "SD_only_seed0"), ("SD + CC", "SD+CC_seed0"),
                          ("SD + CC + MA", "SD+CC+MA_seed0"),
                          ("SD + CC + MA + SG (AMA)", "SD+CC+MA+SG_seed0")]
    }
    on = {name: [t for t in ("cc", "ma", "sg") if s[f"use_{t}"]] for name, s in schedules.items()}
    assert on == {"SD only": [], "SD + CC": ["cc"], "SD + CC + MA": ["cc", "ma"],
                  "SD + CC + MA + SG (AMA)": ["cc", "ma", "sg"]}

    # A second call finds every run in ablation.json and trains nothing.
    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("amalib.train.trainer.Trainer.fit", no_training)
    monkeypatch.setattr("amalib.experiments.ablation.train_oracle", no_training)
    assert run_ablation(out, seeds=(0,), overrides=overrides, log=lambda _line: None) == table


def test_the_packaged_ablation_results_load_and_format():
    results = ablation.load_ablation_results()
    assert results["config"] == "mini" and results["command"].startswith("amalib ablate")
    table = results["table"]
    assert STARTING_BACKBONE in table and len(table) >= 2
    for runs in table.values():
        for metrics in runs.values():
            assert set(metrics) == set(METRIC_KEYS)
    assert format_ablation(table).count("\n| ") == len(table)  # one line per row


def test_load_ablation_results_rejects_another_file(tmp_path):
    path = tmp_path / "ablation.json"
    path.write_text(json.dumps({"SD only": {}}))
    with pytest.raises(ValueError, match="not an ablation results file"):
        ablation.load_ablation_results(path)


def test_format_ablation_mean_and_sample_std():
    runs = {"0": dict.fromkeys(METRIC_KEYS, 0.1), "1": dict.fromkeys(METRIC_KEYS, 0.3)}
    text = format_ablation({"A": runs, "B": {"-": dict.fromkeys(METRIC_KEYS, 0.25)},
                            "C": {"2": dict.fromkeys(METRIC_KEYS, 0.5)}})
    lines = text.splitlines()
    assert lines[0].startswith("| variant | seeds | mAP@all")
    # mean 0.2, sample std sqrt(((0.1)^2 + (0.1)^2) / 1) = 0.1414
    assert lines[2] == "| A | 2 | " + " | ".join(["0.2000 ± 0.1414"] * 4) + " |"
    assert lines[3] == "| B | – | " + " | ".join(["0.2500"] * 4) + " |"  # untrained: no seed
    assert lines[4] == "| C | 1 | " + " | ".join(["0.5000"] * 4) + " |"


def test_ablation_variants_only_switch_terms():
    for switches in ABLATIONS.values():
        assert all(s.startswith("loss.schedule.use_") and s.endswith("=false") for s in switches)
    assert ablation.ABLATIONS["SD + CC + MA + SG (AMA)"] == []


def test_gap_closed_is_the_share_of_the_start_to_oracle_gap():
    row = lambda *values: {str(i): dict.fromkeys(METRIC_KEYS, v) for i, v in enumerate(values)}  # noqa: E731
    table = {STARTING_BACKBONE: row(0.2), AMA: row(0.25, 0.35), ORACLE: row(0.6)}
    # AMA's mean 0.30 closes (0.30 - 0.20) / (0.60 - 0.20) = 25 % of the gap.
    assert gap_closed(table) == pytest.approx(0.25)
    assert "AMA closes 25% of the starting backbone -> oracle gap" in format_ablation(table)
    assert gap_closed({STARTING_BACKBONE: row(0.2), AMA: row(0.3)}) is None
    assert gap_closed({**table, ORACLE: row(0.2)}) is None  # no gap to close


@pytest.mark.slow
def test_oracle_fine_tunes_the_starting_backbone_with_seen_labels(tiny_root, tmp_path,
                                                                   monkeypatch):
    from amalib.config import load_config
    from amalib.data.datasets import LabelledImages

    overrides = tiny_overrides(tiny_root, **{"train.epochs": 1, "train.max_steps_per_epoch": 2})
    cfg = load_config("mini", overrides)
    lists, steps = [], []
    real_init = LabelledImages.__init__

    def spy_init(self, root, list_file, *args, **kwargs):
        lists.append(str(list_file).rsplit("/", 1)[-1])
        real_init(self, root, list_file, *args, **kwargs)

    from amalib.train import supervised

    real_train = supervised.train_supervised

    def spy_train(backbone, datasets, n_classes, **kwargs):
        steps.append((kwargs["steps"], kwargs["batch_size"], n_classes))
        return real_train(backbone, datasets, n_classes, **kwargs)

    trained_backbones = []

    def spy_train_keep(backbone, datasets, n_classes, **kwargs):
        trained_backbones.append((backbone, {k: v.clone() for k, v in
                                             backbone.state_dict().items()}))
        return spy_train(backbone, datasets, n_classes, **kwargs)

    monkeypatch.setattr(LabelledImages, "__init__", spy_init)
    monkeypatch.setattr("amalib.train.supervised.train_supervised", spy_train_keep)
    result = ablation.train_oracle(cfg, tmp_path / "oracle")
    # The backbone itself learned (not only the linear classifier on top of it).
    backbone, before = trained_backbones[0]
    changed = [k for k, v in backbone.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, before[k])]
    assert "blocks.0.attn.qkv.weight" in changed
    # The evaluation's unseen test lists are built first, then the seen-class training lists.
    assert lists[-2:] == ["sketch_filelist_train.txt", "photo_filelist_train.txt"]
    assert steps == [(2, 16, 4)]  # AMA's 1 epoch x 2 steps, 8 + 8 images, 4 seen classes
    assert set(METRIC_KEYS) <= set(result)


def test_rows_limit_what_is_trained(tiny_root, tmp_path, monkeypatch):
    trained = []
    monkeypatch.setattr(ablation, "train_oracle",
                        lambda cfg, run, **kw: trained.append(("oracle", run.name))
                        or dict.fromkeys(METRIC_KEYS, 0.5))
    monkeypatch.setattr("amalib.train.trainer.Trainer.fit",
                        lambda self: trained.append(("fit", self.run_dir.name)))
    overrides = tiny_overrides(tiny_root)
    table = run_ablation(tmp_path / "a", seeds=(0, 1), overrides=overrides, rows=("oracle",),
                         log=lambda _line: None)
    assert trained == [("oracle", "oracle_seed0"), ("oracle", "oracle_seed1")]
    assert list(table) == [STARTING_BACKBONE, ORACLE]
    with pytest.raises(ValueError, match="unknown ablation rows"):
        run_ablation(tmp_path / "a", rows=("everything",), overrides=overrides)


@pytest.mark.slow
def test_evaluating_every_epoch_does_not_change_what_is_trained(tiny_config, tmp_path):
    # The ablation evaluates its runs once, the demo after every epoch; the AMA row may be taken
    # from a demo only because evaluation draws nothing from the training's random stream.
    from amalib.train.trainer import Trainer

    weights = {}
    for every in (1, 2):
        cfg = tiny_config(**{"eval.every": every, "data.num_workers": 2, "model.stem": "cnn"})
        trainer = Trainer(cfg, tmp_path / f"every{every}", log=lambda _line: None)
        trainer.fit()
        weights[every] = trainer.teacher.state_dict()
    assert weights[1].keys() == weights[2].keys()
    for key in weights[1]:
        assert torch.equal(weights[1][key], weights[2][key]), key


def _fake_demo(run, cfg, after):
    (run / "train").mkdir(parents=True)
    (run / "train" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "summary.json").write_text(json.dumps({"after": after}))


def test_ama_row_is_read_from_finished_demos_with_the_same_config(tiny_root, tmp_path,
                                                                   monkeypatch):
    from amalib.config import ConfigError, load_config

    overrides = tiny_overrides(tiny_root)
    for seed in (0, 1):
        # (a generated benchmark may have been generated in another folder: same images)
        cfg = load_config("mini", [*overrides, f"train.seed={seed}", "eval.every=1",
                                   f"data.root={tmp_path / 'elsewhere'}"])
        _fake_demo(tmp_path / f"demo_s{seed}", cfg, dict.fromkeys(METRIC_KEYS, 0.1 * (seed + 1)))
    monkeypatch.setattr("amalib.train.trainer.Trainer.fit",
                        lambda self: pytest.fail("the AMA row was trained"))
    # A table started before data.root left the comparison (its config file still holds it)
    # is continued, not refused.
    (tmp_path / "a").mkdir()
    stored = json.loads(json.dumps(load_config("mini", overrides), default=str))
    stored["train"].pop("seed")
    (tmp_path / "a" / "ablation_config.json").write_text(json.dumps(stored))
    table = run_ablation(tmp_path / "a", seeds=(0, 1), overrides=overrides, rows=("ama",),
                         ama_runs=str(tmp_path / "demo_s{seed}"), log=lambda _line: None)
    assert table[AMA] == {"0": dict.fromkeys(METRIC_KEYS, 0.1), "1": dict.fromkeys(METRIC_KEYS, 0.2)}

    # A demo trained with another config, with another seed, or unfinished is refused.
    cfg = load_config("mini", [*overrides, "train.seed=0", "train.lr=0.5"])
    _fake_demo(tmp_path / "other_s0", cfg, dict.fromkeys(METRIC_KEYS, 0.9))
    with pytest.raises(ConfigError, match="train.lr: 0.5 != 0.001"):
        run_ablation(tmp_path / "b", seeds=(0,), overrides=overrides, rows=("ama",),
                     ama_runs=str(tmp_path / "other_s{seed}"), log=lambda _line: None)
    cfg = load_config("mini", [*overrides, "train.seed=0", "data.generate.photos_per_class=7"])
    _fake_demo(tmp_path / "moredata_s0", cfg, dict.fromkeys(METRIC_KEYS, 0.9))
    with pytest.raises(ConfigError, match="data.generate.photos_per_class: 7 != 6"):
        run_ablation(tmp_path / "b2", seeds=(0,), overrides=overrides, rows=("ama",),
                     ama_runs=str(tmp_path / "moredata_s{seed}"), log=lambda _line: None)
    with pytest.raises(ConfigError, match="seed 1, not 0"):
        run_ablation(tmp_path / "c", seeds=(0,), overrides=overrides, rows=("ama",),
                     ama_runs=str(tmp_path / "demo_s1"), log=lambda _line: None)
    (tmp_path / "demo_s1" / "summary.json").unlink()
    with pytest.raises(FileNotFoundError, match="amalib demo --seed 1"):
        run_ablation(tmp_path / "d", seeds=(1,), overrides=overrides, rows=("ama",),
                     ama_runs=str(tmp_path / "demo_s{seed}"), log=lambda _line: None)


def test_rows_recorded_by_other_processes_are_kept(tmp_path):
    # Two `amalib ablate` processes filling one table: each cell is merged into the file as it
    # is on disk, not into the table a process read when it started.
    table_file = tmp_path / "ablation.json"
    ablation._record(table_file, ORACLE, "0", dict.fromkeys(METRIC_KEYS, 0.6))
    ablation._record(table_file, "SD only", "1", dict.fromkeys(METRIC_KEYS, 0.3))
    table = ablation._record(table_file, STARTING_BACKBONE, "-", dict.fromkeys(METRIC_KEYS, 0.2))
    assert list(table) == [STARTING_BACKBONE, "SD only", ORACLE]
    assert json.loads(table_file.read_text()) == table
    assert table["SD only"] == {"1": dict.fromkeys(METRIC_KEYS, 0.3)}
def test_plot_ablation_draws_one_bar_per_row_and_every_seed():
    import matplotlib.pyplot as plt

    from amalib.viz.ablation import plot_ablation

    table = ablation.load_ablation_results()["table"]
    fig = plot_ablation(table, chance=0.12)
    ax = fig.axes[0]
    assert len(ax.patches) == len(table)
    # A dot per run at its value, on its row's bar (the swarm spreads them less than a bar's
    # half height); rows run from the top.
    dots = np.concatenate([c.get_offsets() for c in ax.collections])
    rows = list(table)[::-1]
    got = sorted((rows[round(y)], round(x, 9)) for x, y in dots)
    assert got == sorted((row, round(m["mAP@all"], 9)) for row in table
                         for m in table[row].values())
    assert all(abs(y - round(y)) < 0.45 for _, y in dots)  # on its own row
    notes = [t.get_text() for t in ax.texts]
    assert sorted(n.split("(")[1] for n in notes) == sorted(
        "no training)" if list(runs) == ["-"] else f"mean of {len(runs)} seeds)"
        for runs in table.values())
    plt.close(fig)
    # viz does not import the experiments layer: its default is the runner's key, by value.
    assert inspect.signature(plot_ablation).parameters["untrained"].default == ablation.UNTRAINED


def test_class_palette_separates_ten_classes():
    from matplotlib.colors import to_rgb

    from amalib.viz.embedding import class_palette

    colours = np.array([to_rgb(c) for c in class_palette(10)])
    distances = np.linalg.norm(colours[:, None] - colours[None], axis=2)
    assert distances[~np.eye(10, dtype=bool)].min() > 0.2


# ------------------------------------------------------------------ paired differences by seed
def _ladder_table(base: dict, row: dict) -> dict:
    as_rows = lambda values: {s: dict.fromkeys(METRIC_KEYS, v) for s, v in values.items()}  # noqa: E731
    return {"SD only": as_rows(base), "SD + CC": as_rows(row)}


def test_paired_difference_and_its_t_interval_by_hand():
    # Differences 0.01, 0.02, 0.03: mean 0.02, sample sd 0.01, t_{0.975}(2) = 4.3027.
    table = _ladder_table({"0": 0.40, "1": 0.42, "2": 0.41, "7": 0.5},
                          {"0": 0.41, "1": 0.44, "2": 0.44})
    (d,) = ablation.paired_differences(table)
    assert (d.term, d.base, d.row, d.seeds) == ("CC", "SD only", "SD + CC", ("0", "1", "2"))
    assert d.differences == pytest.approx((0.01, 0.02, 0.03), abs=1e-12)
    half = 4.3027 * 0.01 / 3 ** 0.5
    assert d.mean == pytest.approx(0.02, abs=1e-12)
    assert (d.low, d.high) == pytest.approx((0.02 - half, 0.02 + half), abs=1e-12)
    assert not d.resolved  # the interval [-0.0048, 0.0448] holds zero
    # The same spread around a larger mean is resolved.
    (d,) = ablation.paired_differences(_ladder_table({"0": 0.40, "1": 0.40, "2": 0.40},
                                                     {"0": 0.44, "1": 0.45, "2": 0.46}))
    assert d.low == pytest.approx(0.05 - half, abs=1e-12) and d.resolved
    assert "| CC (SD only -> SD + CC) | 3 | +0.0500 |" in ablation.format_differences(
        _ladder_table({"0": 0.40, "1": 0.40, "2": 0.40}, {"0": 0.44, "1": 0.45, "2": 0.46}))


def test_one_seed_has_no_interval():
    (d,) = ablation.paired_differences(_ladder_table({"0": 0.4}, {"0": 0.5}))
    assert d.mean == pytest.approx(0.1) and math.isnan(d.low) and not d.resolved
    assert "(one seed: none)" in ablation.format_differences(_ladder_table({"0": 0.4}, {"0": 0.5}))


def test_t_quantile_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in range(1, 400):
        assert ablation.t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-4)
    with pytest.raises(ValueError):
        ablation.t_quantile_975(0)


def test_results_file_holds_the_paired_differences():
    shipped = ablation.load_ablation_results()
    again = ablation.ablation_results(shipped["table"], config=shipped["config"],
                                      epochs=shipped["epochs"])
    assert shipped["paired_differences"] == again["paired_differences"]
    terms = [d["term"] for d in shipped["paired_differences"]["mAP@all"]]
    assert terms == ["CC", "MA", "SG"]


def test_shared_epochs_counts_the_epochs_two_rows_train_alike():
    from amalib.config import load_config

    def row(name, *extra):
        return load_config("mini", [*ABLATIONS[name], *extra])

    # mini: epoch 0 is SD only everywhere; at epoch 1 the CC rows run k-means (CC's weight is
    # still 0) and SD only does not; MA and SG start at epoch 2.
    assert ablation.shared_epochs(row("SD only"), row("SD + CC")) == 1
    assert ablation.shared_epochs(row("SD only"), row(AMA)) == 1
    assert ablation.shared_epochs(row("SD + CC"), row("SD + CC + MA")) == 2
    assert ablation.shared_epochs(row("SD + CC + MA"), row(AMA)) == 2
    assert ablation.shared_epochs(row(AMA), row(AMA)) == 6  # the whole run
    # Another seed, learning rate or start epoch: nothing is shared.
    assert ablation.shared_epochs(row("SD only"), row("SD + CC", "train.seed=1")) == 0
    assert ablation.shared_epochs(row("SD only"), row("SD + CC", "train.lr=0.001")) == 0
    assert ablation.shared_epochs(row(AMA), row(AMA, "loss.schedule.sg_start_epoch=3")) == 0
    # The evaluation cadence draws nothing from the training: it does not count.
    assert ablation.shared_epochs(row(AMA), row(AMA, "eval.every=2")) == 6


@pytest.mark.slow
def test_rows_resumed_from_a_shared_prefix_end_as_when_trained_alone(tiny_root, tmp_path,
                                                                     monkeypatch):
    # mini's schedule in three epochs: CC enters at epoch 1 with weight 0, MA and SG at 2.
    from amalib.config import load_config
    from amalib.train.trainer import Trainer

    extra = {"train.epochs": 3, "loss.schedule.cc_start_epoch": 1,
             "loss.schedule.cc_ramp_end_epoch": 2, "loss.schedule.ma_start_epoch": 2,
             "loss.schedule.sg_start_epoch": 2, "data.num_workers": 2, "model.stem": "cnn"}
    overrides = tiny_overrides(tiny_root, **extra)
    trained = []
    one_epoch = Trainer.train_one_epoch

    def spy(self, epoch, stop=None):
        trained.append((self.run_dir.name, epoch))
        return one_epoch(self, epoch, stop)

    monkeypatch.setattr(Trainer, "train_one_epoch", spy)
    out = tmp_path / "ablation"
    table = run_ablation(out, seeds=(0,), overrides=overrides,
                         rows=("sd", "sd+cc", "sd+cc+ma", "ama"), log=lambda _line: None)
    # 3 + 2 + 1 + 1 epochs instead of 4 x 3.
    assert trained == [("SD_only_seed0", 0), ("SD_only_seed0", 1), ("SD_only_seed0", 2),
                       ("SD+CC_seed0", 1), ("SD+CC_seed0", 2),
                       ("SD+CC+MA_seed0", 2), ("SD+CC+MA+SG_seed0", 2)]
    assert not list(out.glob("*/checkpoint_epoch*.pth"))  # served, then removed
    records = [json.loads(line) for line in
               (out / "SD+CC+MA+SG_seed0" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r.get("trained_in")) for r in records] == [
        (0, "SD_only_seed0"), (1, "SD+CC_seed0"), (2, None)]

    monkeypatch.setattr(Trainer, "train_one_epoch", one_epoch)
    for name, switches in ABLATIONS.items():
        cfg = load_config("mini", [*overrides, *switches, "train.seed=0", "eval.every=3"])
        alone = Trainer(cfg, tmp_path / "alone" / name.replace(" ", ""), log=lambda _line: None)
        alone.fit()
        assert table[name]["0"] == {k: alone.history[-1]["eval"][k] for k in METRIC_KEYS}, name
        resumed = torch.load(out / ablation._run_name(name, 0) / "checkpoint.pth",
                             weights_only=True)["teacher"]
        for key, value in alone.teacher.state_dict().items():
            assert torch.equal(resumed[key], value), (name, key)


@pytest.mark.slow
def test_reading_small_sets_in_process_does_not_change_what_is_trained(tiny_config, tmp_path,
                                                                       monkeypatch):
    # Feature extraction (k-means, evaluation) reads sets of up to IN_PROCESS_MAX_IMAGES images
    # without worker processes; the training, which reads through 2 workers, must not notice.
    from amalib.retrieval import features
    from amalib.train.trainer import Trainer

    weights = {}
    for limit in (features.IN_PROCESS_MAX_IMAGES, 0):  # in-process, then 2 workers
        monkeypatch.setattr(features, "IN_PROCESS_MAX_IMAGES", limit)
        cfg = tiny_config(**{"data.num_workers": 2, "model.stem": "cnn"})
        trainer = Trainer(cfg, tmp_path / f"limit{limit}", log=lambda _line: None)
        trainer.fit()
        weights[limit] = (trainer.teacher.state_dict(), trainer.history[-1]["eval"])
    (a, eval_a), (b, eval_b) = weights.values()
    assert eval_a == eval_b
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_kept_state_is_used_only_when_it_is_this_rows_prefix(tmp_path):
    # Another row's checkpoint_epoch{n}.pth is resumed only if it holds n epochs of a run with
    # this row's settings (up to the switches) in a world of this size; else the row trains.
    from amalib.checkpoint_io import save_checkpoint
    from amalib.config import load_config

    cfg = load_config("mini", [*ABLATIONS["SD + CC"], "eval.every=6"])
    donor = load_config("mini", ABLATIONS["SD only"])

    def kept(name, **changes):
        state = {"mode": "ama", "epoch": 1, "step": 0, "world_size": 1, "config": donor,
                 "student": {}, "teacher": {}, **changes}
        save_checkpoint(state, tmp_path / name)
        return tmp_path / name

    said = []
    assert ablation._kept_state_fits(kept("fits.pth"), cfg, 1, said.append)
    assert not said
    for name, changes in [("epoch2.pth", {"epoch": 2}), ("mid_epoch.pth", {"step": 5}),
                          ("two_ranks.pth", {"world_size": 2}), ("old.pth", {"world_size": None}),
                          ("other_lr.pth", {"config": load_config("mini", [
                              *ABLATIONS["SD only"], "train.lr=0.001"])})]:
        assert not ablation._kept_state_fits(kept(name, **changes), cfg, 1, said.append), name
    assert len(said) == 5 and all("not resuming" in line for line in said)
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    assert not ablation._kept_state_fits(tmp_path / "broken.pth", cfg, 1, said.append)
    assert not ablation._kept_state_fits(tmp_path / "missing.pth", cfg, 1, said.append)
    assert len(said) == 6
