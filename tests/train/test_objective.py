"""Tests of the objective schedule (which AMA terms are on at an epoch, with what weight)."""

from __future__ import annotations

import pytest
import torch

from amalib.train.objective import TERMS, ObjectiveSchedule

EPOCHS = (0, 19, 20, 21, 39, 40, 60, 99, 100, 150)


def expected_weights(epoch):
    """docs/method.md's total loss written out: SD 2:1 always, CC ramps 0 -> 0.5 over epochs
    20..100, SG 0.02 and MA 0.1 from epoch 40 (0-based epochs)."""
    if epoch <= 20:
        cc = 0.0
    else:
        cc = 0.5 * min(1.0, (epoch - 20) / (100 - 20))
    late = epoch >= 40
    return {
        "sd_sketch": 2.0,
        "sd_photo": 1.0,
        "cc": cc,
        "ma": 0.1 if late else 0.0,
        "sg": 0.02 if late else 0.0,
    }


@pytest.mark.parametrize("epoch", EPOCHS)
def test_default_weights_follow_the_method(epoch):
    weights = ObjectiveSchedule().weights(epoch)
    assert set(weights) == set(TERMS)
    want = expected_weights(epoch)
    for term in TERMS:
        assert weights[term] == pytest.approx(want[term], abs=1e-12), term


def test_ramp_hand_values():
    schedule = ObjectiveSchedule()
    assert schedule.weights(20)["cc"] == 0.0  # the ramp starts from 0 at the start epoch
    assert schedule.weights(60)["cc"] == pytest.approx(0.25)  # half way
    assert schedule.weights(100)["cc"] == pytest.approx(0.5)
    assert schedule.weights(101)["cc"] == pytest.approx(0.5)
    # Zero-length ramp: a step to the full weight at the start epoch.
    step = ObjectiveSchedule(cc_start_epoch=5, cc_ramp_end_epoch=5)
    assert [step.weights(e)["cc"] for e in (4, 5, 6)] == [0.0, 0.5, 0.5]


def test_needs_clustering():
    schedule = ObjectiveSchedule()
    assert [schedule.needs_clustering(e) for e in (0, 19, 20, 40, 150)] == [
        False,
        False,
        True,
        True,
        True,
    ]
    only_ma = ObjectiveSchedule(use_cc=False)
    assert not only_ma.needs_clustering(20) and only_ma.needs_clustering(40)
    neither = ObjectiveSchedule(use_cc=False, use_ma=False)
    assert not any(neither.needs_clustering(e) for e in range(200))


@pytest.mark.parametrize("term", ["sd", "cc", "ma", "sg"])
def test_switched_off_term_is_zero_everywhere(term):
    schedule = ObjectiveSchedule(**{f"use_{term}": False})
    keys = ["sd_sketch", "sd_photo"] if term == "sd" else [term]
    others = [t for t in TERMS if t not in keys]
    for epoch in range(0, 201, 5):
        weights = schedule.weights(epoch)
        assert all(weights[k] == 0.0 for k in keys)
        default = ObjectiveSchedule().weights(epoch)
        assert all(weights[t] == default[t] for t in others)


def test_table_at_chosen_epochs_matches_the_formula():
    epochs = (0, 19, 20, 60, 100, 150)
    table = ObjectiveSchedule().table(epochs)
    print(table)
    lines = table.splitlines()
    assert lines[0].split() == ["epoch", *TERMS, "clustering"]
    rows = lines[2:]
    assert len(rows) == len(epochs)
    for epoch, row in zip(epochs, rows):
        cells = row.split()
        assert int(cells[0]) == epoch
        want = expected_weights(epoch)
        for term, cell in zip(TERMS, cells[1:6]):
            assert float(cell) == pytest.approx(want[term], rel=1e-3, abs=1e-12)
        assert cells[6] == ("yes" if epoch >= 20 else "no")


def test_from_config_and_unknown_keys():
    schedule = ObjectiveSchedule.from_config({"cc_weight": 1.0, "use_sg": False})
    assert schedule.cc_weight == 1.0 and not schedule.use_sg
    assert ObjectiveSchedule.from_config(schedule.to_config()) == schedule
    assert ObjectiveSchedule.from_config({}) == ObjectiveSchedule()
    with pytest.raises(ValueError, match="cc_wieght") as info:
        ObjectiveSchedule.from_config({"cc_wieght": 1.0})
    assert "cc_weight" in str(info.value) and "sg_start_epoch" in str(info.value)


def test_invalid_values():
    with pytest.raises(ValueError):
        ObjectiveSchedule(cc_start_epoch=50, cc_ramp_end_epoch=10)
    with pytest.raises(ValueError):
        ObjectiveSchedule(ma_weight=-1.0)


def test_combine_is_the_weighted_sum():
    schedule = ObjectiveSchedule()
    losses = {t: torch.tensor(float(i + 1), requires_grad=True) for i, t in enumerate(TERMS)}
    total = schedule.combine(losses, 60)
    want = sum(expected_weights(60)[t] * (i + 1) for i, t in enumerate(TERMS))
    assert total.item() == pytest.approx(want)
    total.backward()
    assert losses["cc"].grad.item() == pytest.approx(0.25)
    # Before epoch 20 only the SD terms are needed.
    early = schedule.combine({"sd_sketch": torch.tensor(1.0), "sd_photo": torch.tensor(1.0)}, 5)
    assert early.item() == pytest.approx(3.0)
    with pytest.raises(KeyError):
        schedule.combine({"sd_sketch": torch.tensor(1.0)}, 5)  # sd_photo has weight 1
    with pytest.raises(KeyError):
        schedule.combine({"bogus": torch.tensor(1.0)}, 5)


def test_default_table_epochs():
    assert ObjectiveSchedule().default_table_epochs(200) == [0, 19, 20, 39, 40, 60, 99, 100, 199]


@pytest.mark.parametrize(
    ("epoch", "linear", "release_line"),
    [
        (20, 0.0, 0.0),  # the start epoch: both 0 (the release's cc_weightstart)
        (39, 0.5 * 19 / 80, 0.5 * 19 / 80),  # 0.11875: both still on the same ramp
        (40, 0.5 * 20 / 80, 0.5),  # sg_start_epoch: the release's line jumps to the full weight
        (60, 0.5 * 40 / 80, 0.5),
        (100, 0.5, 0.5),
    ],
)
def test_cc_ramp_readings_hand_values(epoch, linear, release_line):
    assert ObjectiveSchedule().cc_ramp_reading == "linear"  # the default follows docs/method.md
    got_linear = ObjectiveSchedule(cc_ramp_reading="linear").weights(epoch)["cc"]
    got_release = ObjectiveSchedule(cc_ramp_reading="release_line").weights(epoch)["cc"]
    assert got_linear == pytest.approx(linear, abs=1e-12)
    assert got_release == pytest.approx(release_line, abs=1e-12)


def test_release_line_breaks_at_sg_start_and_never_exceeds_the_weight():
    schedule = ObjectiveSchedule(cc_ramp_reading="release_line", cc_start_epoch=2, cc_ramp_end_epoch=10,
                                 sg_start_epoch=5)
    assert [schedule.weights(e)["cc"] for e in (2, 3, 4, 5, 9)] == pytest.approx(
        [0.0, 0.5 / 8, 0.5 * 2 / 8, 0.5, 0.5])
    late = ObjectiveSchedule(cc_ramp_reading="release_line", cc_start_epoch=2, cc_ramp_end_epoch=4,
                             sg_start_epoch=8)
    assert [late.weights(e)["cc"] for e in (3, 4, 6, 8)] == pytest.approx([0.25, 0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="cc_ramp_reading"):
        ObjectiveSchedule(cc_ramp_reading="step")
    assert ObjectiveSchedule.from_config({"cc_ramp_reading": "release_line"}).cc_ramp_reading == "release_line"
