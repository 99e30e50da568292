"""Figures of the protocols: each returns a Figure with labelled axes (hubness: log counts,
integer k-occurrence ticks)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from amalib.protocols import hubness  # noqa: E402
from amalib.viz.protocols import (  # noqa: E402
    plot_hubs,
    plot_k_occurrence,
    plot_per_class_ap,
    plot_protocol_comparison,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def reports():
    rng = np.random.default_rng(0)
    queries, gallery = rng.standard_normal((30, 8)), rng.standard_normal((40, 8))
    hubbed = gallery.copy()
    hubbed[5] = queries.mean(0)
    return {"plain": hubness(queries, gallery, k=5), "hub": hubness(queries, hubbed, k=5)}


def _labelled(ax):
    return bool(ax.get_xlabel()) and bool(ax.get_ylabel()) and bool(ax.get_title())


def test_k_occurrence_curves(reports):
    fig = plot_k_occurrence(reports)
    ax = fig.axes[0]
    assert isinstance(fig, matplotlib.figure.Figure) and _labelled(ax)
    assert ax.get_yscale() == "log"
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("hub (skewness") for t in legend) and any("k·Q/G" in t for t in legend)
    assert plot_k_occurrence(reports["plain"]).axes[0].get_yscale() == "log"  # one report
    # Each curve: for n = 0 .. max, the items listed at least n times, counted the plain way.
    for line, report in zip(ax.get_lines(), reports.values()):
        counts = list(report.counts)
        expected = [sum(c >= n for c in counts) for n in range(max(counts) + 1)]
        assert list(line.get_xdata()) == list(range(max(counts) + 1))
        assert list(line.get_ydata()) == expected
        assert expected[0] == len(counts) and expected[-1] >= 1  # no gap, no zero on a log axis


def test_hubs_show_the_most_retrieved_images(reports, tmp_path):
    paths = []
    for i in range(40):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.full((8, 8, 3), i * 6, np.uint8)).save(paths[-1])
    report = reports["hub"]
    fig = plot_hubs(paths, report, n=3, labels=[f"c{i}" for i in range(40)])
    assert len(fig.axes) == 3
    first = fig.axes[0].get_title()
    assert first.startswith(f"{report.counts[report.hubs[0]] / 30:.0%} of lists")
    assert first.endswith(f"c{report.hubs[0]}")


def test_per_class_ap_bars_hardest_on_top():
    rows = [{"class": "eel", "label": 2, "n_queries": 2, "AP": 0.3},
            {"class": "cat", "label": 0, "n_queries": 4, "AP": 0.75}]
    fig = plot_per_class_ap(rows)
    ax = fig.axes[0]
    assert _labelled(ax)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["eel (2)", "cat (4)"]
    assert ax.yaxis_inverted()  # the first (hardest) row is drawn at the top
    assert len(plot_per_class_ap(rows, n=1).axes[0].patches) == 1
    # A reference model's AP per class: one hollow marker per bar, at that class's value.
    ax = plot_per_class_ap(rows, reference={"cat": 0.5, "eel": 0.4, "owl": 0.9}).axes[0]
    (markers,) = ax.collections[1:]
    assert [tuple(p) for p in markers.get_offsets()] == [(0.4, 0.0), (0.5, 1.0)]
    assert any(t.get_text() == "before (mean 0.450)" for t in ax.get_legend().get_texts())


def test_protocol_comparison_grouped_bars():
    zs = {"mAP@all": 0.5, "mAP@200": 0.6, "P@100": 0.4, "P@200": 0.3}
    gzs = {k: v / 2 for k, v in zs.items()}
    fig = plot_protocol_comparison({"zs": zs, "gzs": gzs})
    ax = fig.axes[0]
    assert _labelled(ax)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(zs)
    assert len(ax.patches) == 8
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["zs", "gzs"]


def test_protocol_bars_carry_each_protocols_chance_tick():
    import matplotlib.pyplot as plt

    from amalib.viz.protocols import plot_protocol_comparison

    keys = ("mAP@all", "P@100")
    results = {"zs": {"mAP@all": 0.4, "P@100": 0.3}, "p2s": {"mAP@all": 0.5, "P@100": 0.35}}
    chance = {"zs": {"mAP@all": 0.12, "P@100": 0.1}, "p2s": {"mAP@all": 0.2, "P@100": 0.09}}
    fig = plot_protocol_comparison(results, keys, chance=chance)
    ax = fig.axes[0]
    levels = sorted(seg[0][1] for c in ax.collections for seg in c.get_segments())
    assert levels == sorted([0.12, 0.1, 0.2, 0.09])  # one tick per bar, at its chance level
    assert ax.get_ylim()[1] == pytest.approx(0.6)  # not stretched to 1.05
    assert fig.get_size_inches()[0] * 72 >= 600
    plt.close(fig)


def test_paired_differences_figure_draws_every_seed_and_interval():
    import matplotlib.pyplot as plt

    from amalib.experiments.ablation import paired_differences
    from amalib.viz.ablation import plot_paired_differences

    rows = lambda v: {s: {"mAP@all": x} for s, x in v.items()}  # noqa: E731
    table = {"SD only": rows({"0": 0.40, "1": 0.40, "2": 0.40}),
             "SD + CC": rows({"0": 0.44, "1": 0.45, "2": 0.46}),
             "SD + CC + MA": rows({"0": 0.45, "1": 0.44, "2": 0.47})}
    diffs = paired_differences(table)
    fig = plot_paired_differences(diffs)
    ax = fig.axes[0]
    from matplotlib.collections import LineCollection, PathCollection

    # A dot per seed on its term's row (the first term on top), spread apart where they overlap.
    dots = np.concatenate([c.get_offsets() for c in ax.collections
                           if isinstance(c, PathCollection)])
    rows = [d.term for d in diffs][::-1]
    assert sorted((rows[round(y)], round(x, 9)) for x, y in dots) == sorted(
        (d.term, round(x, 9)) for d in diffs for x in d.differences)
    assert all(abs(y - round(y)) < 0.45 for _, y in dots)  # on its own row
    spans = sorted((seg[0][0], seg[1][0]) for c in ax.collections
                   if isinstance(c, LineCollection) for seg in c.get_segments())
    want = sorted((d.low, d.high) for d in diffs)
    assert [x for s in spans for x in s] == pytest.approx([x for s in want for x in s])
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0].startswith("+ CC: +0.0500") and "resolved" in labels[0]
    assert fig.get_size_inches()[0] * 72 >= 600
    plt.close(fig)


def test_paired_differences_figure_of_no_pair_is_empty():
    # An ablation with only one trained row so far has no pair to difference.
    from amalib.viz.ablation import plot_paired_differences

    fig = plot_paired_differences([])
    assert not fig.axes[0].collections and not fig.axes[0].get_yticklabels()
    plt.close(fig)
