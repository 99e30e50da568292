"""The ablation command: every variant switches its terms off, runs are reused, the table."""

from __future__ import annotations

import json

import pytest
import yaml
from tiny_benchmark import tiny_overrides

from amalib.engine import ablation
from amalib.engine.ablation import ABLATIONS, STARTING_BACKBONE, format_ablation, run_ablation
from amalib.metrics import METRIC_KEYS


@pytest.mark.slow
def test_ablation_trains_each_variant_with_its_terms_off_and_resumes(tiny_root, tmp_path,
                                                                     monkeypatch):
    out = tmp_path / "ablation"
    overrides = tiny_overrides(tiny_root, **{"train.epochs": 1, "train.max_steps_per_epoch": 1})
    table = run_ablation(out, seeds=(0,), overrides=overrides, log=lambda _line: None)

    assert list(table) == [STARTING_BACKBONE, *ABLATIONS]
    for runs in table.values():
        for metrics in runs.values():
            assert set(metrics) == set(METRIC_KEYS)
            assert all(0.0 <= v <= 1.0 for v in metrics.values())
    assert json.loads((out / "ablation.json").read_text()) == table
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

    monkeypatch.setattr("amalib.engine.trainer.Trainer.fit", no_training)
    assert run_ablation(out, seeds=(0,), overrides=overrides, log=lambda _line: None) == table


def test_format_ablation_mean_and_sample_std():
    runs = {"0": dict.fromkeys(METRIC_KEYS, 0.1), "1": dict.fromkeys(METRIC_KEYS, 0.3)}
    text = format_ablation({"A": runs, "B": {"-": dict.fromkeys(METRIC_KEYS, 0.25)}})
    lines = text.splitlines()
    assert lines[0].startswith("| variant | seeds | mAP@all")
    # mean 0.2, sample std sqrt(((0.1)^2 + (0.1)^2) / 1) = 0.1414
    assert lines[2] == "| A | 2 | " + " | ".join(["0.2000 ± 0.1414"] * 4) + " |"
    assert lines[3] == "| B | 1 | " + " | ".join(["0.2500 ± 0.0000"] * 4) + " |"


def test_ablation_variants_only_switch_terms():
    for switches in ABLATIONS.values():
        assert all(s.startswith("loss.schedule.use_") and s.endswith("=false") for s in switches)
    assert ablation.ABLATIONS["SD + CC + MA + SG (AMA)"] == []
