"""DINO projection head against a replica of DINO's own ``DINOHead`` (classic weight_norm)."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from amalib.models.head import DINOProjectionHead, to_official_head_keys


class OfficialDINOHead(nn.Module):
    """DINO's ``vision_transformer.DINOHead`` as published (classic ``nn.utils.weight_norm``)."""

    def __init__(self, in_dim, out_dim, use_bn=False, norm_last_layer=True, nlayers=3,
                 hidden_dim=2048, bottleneck_dim=256):
        super().__init__()
        nlayers = max(nlayers, 1)
        if nlayers == 1:
            self.mlp = nn.Linear(in_dim, bottleneck_dim)
        else:
            layers = [nn.Linear(in_dim, hidden_dim)]
            if use_bn:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.GELU())
            for _ in range(nlayers - 2):
                layers.append(nn.Linear(hidden_dim, hidden_dim))
                if use_bn:
                    layers.append(nn.BatchNorm1d(hidden_dim))
                layers.append(nn.GELU())
            layers.append(nn.Linear(hidden_dim, bottleneck_dim))
            self.mlp = nn.Sequential(*layers)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.last_layer = nn.utils.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        self.last_layer.weight_g.data.fill_(1)
        if norm_last_layer:
            self.last_layer.weight_g.requires_grad = False

    def forward(self, x):
        x = self.mlp(x)
        x = nn.functional.normalize(x, dim=-1, p=2)
        return self.last_layer(x)


@pytest.mark.parametrize("n_layers", [1, 2, 3])
@pytest.mark.parametrize("use_bn", [False, True])
def test_loads_official_state_dict_and_matches_outputs(n_layers, use_bn):
    torch.manual_seed(0)
    official = OfficialDINOHead(12, 20, use_bn=use_bn, nlayers=n_layers, hidden_dim=16,
                                bottleneck_dim=8)
    with torch.no_grad():  # non-trivial magnitudes so that g matters
        official.last_layer.weight_g.uniform_(0.5, 2.0)
    official_state = official.state_dict()
    assert "last_layer.weight_g" in official_state and "last_layer.weight_v" in official_state

    ours = DINOProjectionHead(12, 20, n_layers=n_layers, use_bn=use_bn, hidden_dim=16,
                              bottleneck_dim=8)
    ours.load_state_dict(official_state, strict=True)
    official.eval(), ours.eval()
    x = torch.randn(5, 12)
    torch.testing.assert_close(ours(x), official(x), rtol=0, atol=1e-6)
    # And back: our keys renamed to DINO's fit the official module exactly.
    assert set(to_official_head_keys(ours.state_dict())) == set(official_state)


def test_forward_formula():
    torch.manual_seed(1)
    head = DINOProjectionHead(6, 10, hidden_dim=8, bottleneck_dim=4, norm_last_layer=False)
    with torch.no_grad():
        head.last_layer.parametrizations.weight.original0.uniform_(0.5, 2.0)
    x = torch.randn(3, 6)
    linear = [head.mlp[0], head.mlp[2], head.mlp[4]]
    hidden = F.gelu(linear[1](F.gelu(linear[0](x))))
    z = linear[2](hidden)
    z = z / z.norm(dim=1, keepdim=True)
    g = head.last_layer.parametrizations.weight.original0  # (10, 1)
    v = head.last_layer.parametrizations.weight.original1  # (10, 4)
    weight = g * v / v.norm(dim=1, keepdim=True)
    torch.testing.assert_close(head(x), z @ weight.T)


@pytest.mark.parametrize("norm_last_layer", [True, False])
def test_last_layer_magnitude_starts_at_one_and_is_frozen_when_asked(norm_last_layer):
    head = DINOProjectionHead(6, 10, hidden_dim=8, bottleneck_dim=4,
                              norm_last_layer=norm_last_layer)
    g = head.last_layer.parametrizations.weight.original0
    assert torch.equal(g, torch.ones(10, 1))
    assert g.requires_grad is (not norm_last_layer)
    head(torch.randn(3, 6)).sum().backward()
    assert (g.grad is None) is norm_last_layer
    assert head.last_layer.parametrizations.weight.original1.grad is not None


def test_invalid_layers():
    with pytest.raises(ValueError):
        DINOProjectionHead(4, 4, n_layers=0)
