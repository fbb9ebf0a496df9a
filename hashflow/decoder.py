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

    def forward_with_jacobian(self, features: torch.Tensor, d_features: torch.Tensor):
        """Colour and its derivative w.r.t. (x, y), by forward-mode through the MLP.

        features: (..., in_features); d_features: (..., 2, in_features) (d/dx, d/dy).
        Returns colour (..., 3) and jacobian (..., 3, 2).
        """
        first, _, last = self.layers
        hidden = first(features)
        active = (hidden > 0).to(hidden.dtype).unsqueeze(-2)
        d_hidden = (d_features @ first.weight.T) * active  # (..., 2, hidden)
        colour = last(torch.relu(hidden))
        return colour, (d_hidden @ last.weight.T).transpose(-1, -2)

    def hparams(self) -> dict[str, int]:
        """Constructor arguments, for serialisation."""
        return {"in_features": self.in_features, "hidden": self.hidden,
                "out_features": self.out_features}
