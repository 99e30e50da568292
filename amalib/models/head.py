"""DINO projection head: MLP → L2-normalise → weight-normalised linear layer.

Reference: Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021
(``DINOHead`` in the official ``vision_transformer.py``). AMA (Yin et al., AAAI 2024) uses the head
of the DINO checkpoint it starts from: in→2048→2048→256 with GELU, then 256→65536.

The last layer uses ``torch.nn.utils.parametrizations.weight_norm`` (the classic
``nn.utils.weight_norm`` is deprecated and cannot be deep-copied). Its state-dict keys are
``last_layer.parametrizations.weight.original0`` (the norm ``g``, shape ``(out_dim, 1)``) and
``...original1`` (the direction ``v``); a load hook also accepts the official keys
``last_layer.weight_g`` / ``last_layer.weight_v``, so DINO's full checkpoints load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["DINOProjectionHead", "official_head_key", "to_official_head_keys"]

_OFFICIAL_TO_PARAMETRIZED = {
    "last_layer.weight_g": "last_layer.parametrizations.weight.original0",
    "last_layer.weight_v": "last_layer.parametrizations.weight.original1",
}
_PARAMETRIZED_TO_OFFICIAL = {v: k for k, v in _OFFICIAL_TO_PARAMETRIZED.items()}


def official_head_key(key: str) -> str:
    """Map a head state-dict key of this module to DINO's name (``weight_g``/``weight_v``)."""
    for ours, official in _PARAMETRIZED_TO_OFFICIAL.items():
        if key.endswith(ours):
            return key[: len(key) - len(ours)] + official
    return key


def to_official_head_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a head (or wrapper) state dict to DINO's key layout; values are not copied."""
    return {official_head_key(k): v for k, v in state_dict.items()}


class DINOProjectionHead(nn.Module):
    """DINO projection head (Caron et al., ICCV 2021).

    ``x → MLP (n_layers linear layers, GELU between, optional BatchNorm) → bottleneck_dim →
    L2-normalise → weight-normalised linear (no bias) → out_dim``.

    Module names follow DINO's ``DINOHead`` (``mlp.0``, ``mlp.2``, ``mlp.4`` for three layers
    without BatchNorm; ``mlp`` itself is a single ``Linear`` when ``n_layers == 1``;
    ``last_layer``), so official checkpoints load strictly.

    Args:
        in_dim: Input width (the backbone's ``embed_dim``).
        out_dim: Number of prototypes ``K`` (DINO/AMA: 65536).
        hidden_dim: Width of the hidden layers (2048).
        bottleneck_dim: Width before normalisation (256).
        n_layers: Number of linear layers in the MLP (at least 1).
        use_bn: BatchNorm after each hidden linear layer.
        norm_last_layer: Freeze the weight-norm magnitude ``g`` of the last layer to 1 (DINO's
            recommendation for ViT-B stability); ``g`` still starts at 1 when ``False``.

    Shapes:
        ``forward``: ``(batch, in_dim)`` → ``(batch, out_dim)`` logits.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        n_layers: int = 3,
        use_bn: bool = False,
        norm_last_layer: bool = True,
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.in_dim, self.out_dim, self.bottleneck_dim = in_dim, out_dim, bottleneck_dim
        if n_layers == 1:
            self.mlp: nn.Module = nn.Linear(in_dim, bottleneck_dim)
        else:
            layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim)]
            if use_bn:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.GELU())
            for _ in range(n_layers - 2):
                layers.append(nn.Linear(hidden_dim, hidden_dim))
                if use_bn:
                    layers.append(nn.BatchNorm1d(hidden_dim))
                layers.append(nn.GELU())
            layers.append(nn.Linear(hidden_dim, bottleneck_dim))
            self.mlp = nn.Sequential(*layers)
        self.apply(self._init_weights)

        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        magnitude = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            magnitude.fill_(1.0)
        if norm_last_layer:
            magnitude.requires_grad_(False)
        self.norm_last_layer = norm_last_layer

        self._register_load_state_dict_pre_hook(self._accept_official_keys)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    @staticmethod
    def _accept_official_keys(state_dict, prefix, *args) -> None:
        # DINO checkpoints store the classic weight_norm names; rename them in place.
        for official, ours in _OFFICIAL_TO_PARAMETRIZED.items():
            if prefix + official in state_dict:
                state_dict[prefix + ours] = state_dict.pop(prefix + official)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project backbone features ``(batch, in_dim)`` to prototype logits ``(batch, out_dim)``."""
        x = self.mlp(x)
        x = F.normalize(x, dim=-1, p=2)
        return self.last_layer(x)
