"""The figures of the notebook series (amalib.viz.images, amalib.viz.matrices), also reached as
amalib.tutorial.plot_... ."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from amalib.viz.images import plot_attention, plot_image_rows, plot_multicrop, to_image
from amalib.viz.matrices import plot_distance_matrices


def test_to_image_undoes_the_normalisation():
    from PIL import Image

    from amalib.data.transforms import eval_transform

    pixels = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    tensor = eval_transform(16, 16)(Image.fromarray(pixels))
    np.testing.assert_allclose(to_image(tensor), pixels / 255.0, atol=1e-5)


def test_figures_have_the_expected_panels(tmp_path):
    import matplotlib.pyplot as plt
    from PIL import Image

    from amalib.data import MultiCropTransform

    image = Image.fromarray(np.full((32, 32, 3), 200, dtype=np.uint8))
    crops = MultiCropTransform(global_size=16, local_size=8, n_local=3)(image)
    fig = plot_multicrop({"sketch": (image, crops), "photo": (image, crops[:3])})
    assert len(fig.axes) == 2 * (1 + 5)
    plt.close(fig)

    images = torch.zeros(3, 3, 16, 16)
    fig = plot_attention(images, torch.rand(3, 2, 2, 2), ["a", "b", "c"])
    # images, the same images with the attention overlaid, one colour bar for all the maps
    assert len(fig.axes) == 2 * 3 + 1
    plt.close(fig)

    path = tmp_path / "x.png"
    image.save(path)
    fig = plot_image_rows([[path, path], [path]], ["one", "two"], title="t")
    assert len(fig.axes) == 4
    plt.close(fig)

    fig = plot_distance_matrices({"a": torch.eye(3), "b": 5 + np.arange(9).reshape(3, 3)})
    assert len(fig.axes) == 4  # two matrices, each with its own colour bar
    # Each matrix on its own colour scale.
    assert fig.axes[0].images[0].get_clim() == (0.0, 1.0)
    assert fig.axes[1].images[0].get_clim() == (5.0, 13.0)
    plt.close(fig)
    # Groups: separators between them, their names at their centres; a colormap per panel.
    fig = plot_distance_matrices({"d": np.zeros((4, 4))}, group_size=2,
                                          group_labels=["x", "y"], cmaps={"d": "viridis_r"})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y"]
    assert list(ax.get_xticks()) == [0.5, 2.5]
    assert [line.get_xdata()[0] for line in ax.lines if line.get_xdata()[0] == 1.5] == [1.5]
    assert ax.images[0].get_cmap().name == "viridis_r"
    plt.close(fig)


def test_group_runs():
    from amalib.viz.matrices import group_runs

    assert group_runs(["a", "a", "b", "c", "c", "a"]) == [("a", 0, 2), ("b", 2, 3), ("c", 3, 5),
                                                          ("a", 5, 6)]
    assert group_runs([]) == []


def test_distance_matrices_with_groups_of_unequal_sizes():
    import matplotlib.pyplot as plt

    fig = plot_distance_matrices({"w": np.zeros((5, 5)), "d": np.ones((5, 5))},
                                 groups=["cat", "cat", "cat", "dog", "dog"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog"]
    assert list(ax.get_xticks()) == [1.0, 3.5]
    assert [line.get_xdata()[0] for line in ax.lines if line.get_xdata()[0] == 2.5] == [2.5]
    assert all(line.get_color() == "red" for line in ax.lines)
    # Wide enough to read at the notebooks' 72 dpi: two panels are over 600 px.
    assert fig.get_figwidth() * 72 >= 600
    plt.close(fig)
    with pytest.raises(ValueError, match="either group_size"):
        plot_distance_matrices({"w": np.zeros((2, 2))}, groups=["a", "b"], group_size=1)
