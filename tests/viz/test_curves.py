"""The training-curve figure: what it draws, checked on the artists."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from amalib.metrics import METRIC_KEYS  # noqa: E402
from amalib.viz.curves import plot_training_curves  # noqa: E402


def _history():
    evals = [{"mAP@all": 0.40 + 0.01 * e, "mAP@200": 0.35, "P@100": 0.30, "P@200": 0.20}
             for e in range(3)]
    return [{"epoch": e, "loss": {"total": 24.0 + e, "sd_sketch": 7.9, "sd_photo": 8.1,
                                  **({"cc": 5.5} if e else {})}, "eval": evals[e]}
            for e in range(3)]


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_total_has_its_own_panel_and_terms_keep_theirs():
    fig = plot_training_curves(_history(), log_k=8.3)
    ax_loss, ax_total, _ = fig.axes
    terms = [line for line in ax_loss.lines if line.get_label() != "ln K = 8.30 (uniform student)"]
    assert sorted(line.get_label() for line in terms) == ["cc", "sd_photo", "sd_sketch"]
    (total,) = ax_total.lines
    assert list(total.get_ydata()) == [24.0, 25.0, 26.0]
    # the terms' axis is scaled to the terms (and ln K), not to the total
    assert ax_loss.get_ylim()[1] < 10
    (reference,) = [line for line in ax_loss.lines if line not in terms]
    assert list(reference.get_ydata()) == [8.3, 8.3]
    cc = next(line for line in terms if line.get_label() == "cc")
    assert list(cc.get_xdata()) == [0, 1, 2] and cc.get_ydata()[0] != cc.get_ydata()[0]  # NaN


def test_start_and_chance_are_drawn_per_metric():
    start = dict(zip(METRIC_KEYS, (0.33, 0.28, 0.27, 0.21)))
    chance = dict(zip(METRIC_KEYS, (0.12, 0.05, 0.10, 0.10)))
    fig = plot_training_curves(_history(), start=start, chance=chance)
    ax_eval = fig.axes[2]
    points = {(line.get_xdata()[0], line.get_ydata()[0]) for line in ax_eval.lines
              if len(line.get_xdata()) == 1}
    assert points == {(-1, v) for v in start.values()}
    horizontal = sorted(line.get_ydata()[0] for line in ax_eval.lines
                        if line.get_linestyle() == ":")
    assert horizontal == sorted(set(chance.values()))  # P@100 and P@200 share one line
    notes = sorted(t.get_text() for t in ax_eval.texts)
    assert notes == ["chance P@100, P@200", "chance mAP@200", "chance mAP@all"]
    assert [t.get_text() for t in ax_eval.get_xticklabels()] == ["start", "0", "1", "2"]
    labels = [t.get_text() for t in ax_eval.get_legend().get_texts()]
    assert labels[:4] == list(METRIC_KEYS)
    assert "starting backbone" in labels and "chance (random ranking)" in labels


def test_without_start_the_epoch_ticks_are_integers():
    fig = plot_training_curves(_history())
    fig.canvas.draw()
    ticks = fig.axes[2].get_xticks()
    assert all(float(t).is_integer() for t in ticks)
    assert all(t >= 0 for t in ticks if 0 <= t <= 2)
