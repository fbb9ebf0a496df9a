"""Flow solver settings: one dataclass and the named presets that API, CLI and benchmarks read."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class SolverConfig:
    """How `hashflow.estimate` encodes frames and descends on displacements."""

    encode_steps: int = 150
    """Direct-fit optimisation steps per frame (encoder="direct")."""
    finetune_steps: int = 30
    """Table fine-tune steps after the pretrained encoder (encoder="pretrained")."""
    encode_lr: float = 2e-2
    """Adam learning rate of the per-frame fit."""
    level_dropout: float = 0.5
    """Share of fit steps that keep only the coarsest k levels (coarse-to-fine needs it)."""
    search_radius: float = 64.0
    """Largest displacement (px) the global candidate search considers (at most 0.4 x the
    shorter image side)."""
    search_step: float = 4.0
    """Spacing (px) of the global candidate grid."""
    search_levels: int = 2
    """Levels decoded during the global candidate search (the blurriest view)."""
    search_samples: int = 1024
    """Pixels of img1 scored per global candidate."""
    starts: int = 4
    """Best distinct global candidates refined (multi-start); the lowest final loss wins."""
    level_schedule: tuple[int, ...] = (2, 3, 4, 5, 6, 8, 10, 12)
    """Level counts k decoded in turn, coarse to fine (clipped to the grid's levels)."""
    iterations: int = 5
    """Levenberg-Marquardt iterations per entry of the level schedule."""
    tile_sizes: tuple[int, ...] = (64, 32, 16)
    """Tile sides (px) of the global-to-local hierarchy between image and points."""
    tile_start_level: int = 6
    """Level count at which tile refinement starts (parents are already sub-pixel close)."""
    tile_samples: int = 64
    """Pixels of img1 per tile (a regular sub-grid)."""
    patch_radius: int = 1
    """Patch mode: the (2r+1)**2 pixels around a point share its displacement."""
    local_start_level: int = 12
    """Level count at which the final pixel/patch refinement starts."""
    robust_eps: float = 0.05
    """Charbonnier epsilon of the photometric loss sqrt(r**2 + eps**2)."""
    max_step: float = 4.0
    """Largest displacement change (px) of one solver step."""
    tile_prior: float = 0.01
    """Pull (per sample and px**2) of a tile towards its starting displacement."""
    point_prior: float = 0.01
    """Pull (per sample and px**2) of a patch or pixel towards its starting displacement."""
    outlier_tolerance: float = 0.2
    """A tile takes its neighbours' median when that costs at most this much more (relative)."""
    image_samples: int = 16384
    """Pixels of img1 used by image mode's final refinement."""
    chunk_size: int = 32768
    """Samples decoded at once: bounds memory on large images."""

    def replace(self, **changes) -> "SolverConfig":
        """A copy with some fields changed; unknown names raise ValueError."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown solver option(s): {sorted(unknown)}; known: "
                             f"{[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, SolverConfig] = {
    "default": SolverConfig(),
    "fast": SolverConfig(encode_steps=60, finetune_steps=10, iterations=3, starts=2,
                         tile_sizes=(64, 32), level_schedule=(2, 4, 6, 9, 12)),
    "accurate": SolverConfig(encode_steps=400, finetune_steps=100, iterations=8, starts=6,
                             search_step=3.0, tile_sizes=(96, 64, 32, 16, 8)),
}


def get_preset(name: str | SolverConfig) -> SolverConfig:
    """The named preset (or a SolverConfig passed through); ValueError for unknown names."""
    if isinstance(name, SolverConfig):
        return name
    if name not in PRESETS:
        raise ValueError(f"unknown solver preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]
