"""MultiCropWrapper: grouped backbone calls equal one call per crop; crop-major order."""

import pytest
import torch

from amalib.models.head import DINOProjectionHead
from amalib.models.vit import create_vit
from amalib.models.wrapper import MultiCropWrapper, group_consecutive_resolutions


@pytest.fixture(scope="module")
def wrapper():
    torch.manual_seed(0)
    backbone = create_vit("vit_mini", patch_size=8, img_size=32)
    head = DINOProjectionHead(192, 16, hidden_dim=32, bottleneck_dim=8)
    return MultiCropWrapper(backbone, head).eval()


@pytest.mark.parametrize(
    "sizes, expected_runs",
    [
        ([32, 32, 16, 16, 16], [(0, 2), (2, 5)]),
        ([32, 16, 32], [(0, 1), (1, 2), (2, 3)]),
        ([32], [(0, 1)]),
        ([16, 16, 16], [(0, 3)]),
    ],
)
def test_grouping_and_backbone_calls(wrapper, sizes, expected_runs):
    batch = 3
    crops = [torch.randn(batch, 3, s, s) for s in sizes]
    assert group_consecutive_resolutions(crops) == expected_runs

    calls = []
    handle = wrapper.backbone.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        with torch.no_grad():
            features, outputs = wrapper(crops)
    finally:
        handle.remove()
    assert calls == [batch * (end - start) for start, end in expected_runs]

    # Reference: one backbone call per crop, concatenated crop-major.
    with torch.no_grad():
        per_crop = [wrapper.backbone(crop) for crop in crops]
    for c, crop_features in enumerate(per_crop):
        torch.testing.assert_close(features[c * batch : (c + 1) * batch], crop_features,
                                   rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(outputs[c * batch : (c + 1) * batch],
                                   wrapper.head(crop_features), rtol=1e-5, atol=1e-5)
    assert features.shape == (len(sizes) * batch, 192)
    assert outputs.shape == (len(sizes) * batch, 16)


def test_single_tensor_and_non_square(wrapper):
    images = torch.randn(2, 3, 24, 40)
    with torch.no_grad():
        features, outputs = wrapper(images)
        torch.testing.assert_close(features, wrapper.backbone(images))
        torch.testing.assert_close(outputs, wrapper.head(wrapper.backbone(images)))
    assert group_consecutive_resolutions([images, torch.randn(2, 3, 40, 24)]) == [(0, 1), (1, 2)]


def test_empty_list_is_an_error(wrapper):
    with pytest.raises(ValueError):
        wrapper([])
