"""The mini-benchmark figure: one row per class, photos then sketches."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from amalib.viz.benchmark import plot_mini_benchmark  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_plot_mini_benchmark(tmp_path):
    from amalib.data.synthetic import generate_mini_benchmark, mini_benchmark_examples

    tiny = dict(seed=3, image_size=32, n_seen=4, n_unseen=2, sketches_per_class=2,
                photos_per_class=3, test_sketches_per_class=2, test_photos_per_class=2,
                n_pretrain_classes=2, pretrain_photos_per_class=2)
    tree = generate_mini_benchmark(tmp_path / "mini", workers=1, **tiny)
    fig = plot_mini_benchmark(mini_benchmark_examples(tree, n_classes=3, per_class=2))
    assert len(fig.axes) == 3 * 4


def test_rows_are_classes_and_columns_photos_then_sketches():
    class Example:
        def __init__(self, name, seen, n_photos, n_sketches):
            self.name, self.seen = name, seen
            self.photos = [np.full((8, 8, 3), 10, np.uint8)] * n_photos
            self.sketches = [np.full((8, 8, 3), 250, np.uint8)] * n_sketches

    fig = plot_mini_benchmark([Example("star_legs", True, 3, 3), Example("dome_twin", False, 2, 3)])
    axes = np.array(fig.axes).reshape(2, 6)
    assert axes[0, 0].get_ylabel() == "star_legs\n(seen)"
    assert axes[1, 0].get_ylabel() == "dome_twin\n(unseen)"
    assert axes[0, 0].get_title(loc="left") == "photos"
    assert axes[0, 3].get_title(loc="left") == "sketches"
    drawn = [[len(ax.images) for ax in row] for row in axes]
    assert drawn == [[1, 1, 1, 1, 1, 1], [1, 1, 0, 1, 1, 1]]  # a short row leaves blanks
    with pytest.raises(ValueError, match="at least one"):
        plot_mini_benchmark([])
