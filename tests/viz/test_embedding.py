"""The embedding figure: colours per class, markers per domain, one legend, honest titles."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from amalib.viz import embedding  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_plot_embedding_draws_one_scatter_per_class_and_domain():
    points = np.arange(12, dtype=float).reshape(6, 2)
    labels = np.array([0, 0, 1, 1, 2, 2])
    domains = np.array(["photo", "sketch"] * 3)
    fig, ax = plt.subplots()
    handles = embedding.plot_embedding(ax, points, labels, domains, ["a", "b", "c"], "t",
                                       legend=False)
    drawn = [c for c in ax.collections if len(c.get_offsets())]
    assert len(drawn) == 6  # 3 classes x 2 domains
    assert ax.get_legend() is None
    assert [h.get_label() for h in handles] == ["photo", "sketch", "a", "b", "c"]
    colours = {tuple(np.round(c.get_facecolor()[0], 3)) for c in drawn}
    assert len(colours) == 3


def test_plot_umap_titles_say_what_is_subsampled_and_one_legend(monkeypatch):
    # The map itself is UMAP's business; a linear stand-in keeps the test fast.
    monkeypatch.setattr(embedding, "umap_embed", lambda x, seed=0: np.asarray(x)[:, :2])
    rng = np.random.default_rng(0)
    sf, pf = rng.normal(size=(20, 4)), rng.normal(size=(30, 4))
    sl, pl = np.repeat([0, 1], 10), np.repeat([0, 1], 15)
    fig = embedding.plot_umap({"before": (sf, sl, pf, pl), "after": (sf, sl, pf, pl)},
                              class_names=["a", "b"], max_per_domain=25)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["before\n(20 of 20 sketches, 25 of 30 photos)",
                      "after\n(20 of 20 sketches, 25 of 30 photos)"]
    assert all(ax.get_legend() is None for ax in fig.axes)
    # Both panels draw the same 20 + 25 images (the same subsample, the same stand-in map).
    offsets = [np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets())])
               for ax in fig.axes]
    assert sorted(map(tuple, offsets[0])) == sorted(map(tuple, offsets[1]))
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["photo", "sketch", "a", "b"]


def test_domain_legend_glyphs_are_black_not_a_class_colour():
    points = np.arange(8, dtype=float).reshape(4, 2)
    labels = np.array([0, 0, 1, 1])
    domains = np.array(["photo", "sketch"] * 2)
    fig, ax = plt.subplots()
    handles = embedding.plot_embedding(ax, points, labels, domains, ["a", "b"], legend=False)
    for h in handles[:2]:
        assert tuple(h.get_facecolor()[0][:3]) == (0.0, 0.0, 0.0)
