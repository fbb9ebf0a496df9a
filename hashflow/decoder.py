"""The universal decoder: a per-pixel MLP from hash features to colour."""

from __future__ import annotations

import torch
from torch import nn


class Decoder(nn.Module):
    """Two-layer MLP ``in_features -> hidden -> 3`` applied to every pixel independently."""

    def __init__(self, in_features: int = 24, hidden: int = 64, out_features: int = 3):
        super().__init__()
        self.in_features, self.hidden, self.out_features = in_features, hidden, out_features
        self.layers = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                                    nn.Linear(hidden, out_features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features: (..., in_features) -> colour (..., 3), roughly in [0, 1] (not clamped)."""
        return self.layers(features)

    def forward_maps(self, features: torch.Tensor) -> torch.Tensor:
        """features: (B, in_features, H, W) -> colour (B, 3, H, W)."""
        return self(features.movedim(1, -1)).movedim(-1, 1)

    def hparams(self) -> dict[str, int]:
        """Constructor arguments, for serialisation."""
        return {"in_features": self.in_features, "hidden": self.hidden,
                "out_features": self.out_features}
