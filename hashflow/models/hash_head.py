"""Hash encoder head: MiT stage features -> multiresolution hash tables (B, L, T, F).

SegFormer's all-MLP decoder adapted to hash tables:

1. a Linear per stage to a common width E, applied at the stage's own resolution, each result
   resampled to the stride-4 grid of stage 1, summed, ReLU (SegFormer's fuse step);
2. a shared Linear ``E -> D`` (the first layer of the per-vertex MLP);
3. per level l: that D-channel map is sampled bilinearly at the level's vertex positions
   ``(N_l + 1) x (N_l + 1)``, the input colour sampled there goes through a per-level
   ``Linear(3 -> D)`` and is added, then ReLU and a per-level ``Linear(D -> F)``.

Why step 1 differs in form from SegFormer: SegFormer projects each stage (Linear), upsamples,
concatenates and fuses with a second Linear, with no nonlinearity in between; the product of
those linear maps is one Linear per stage, and a Linear commutes with bilinear resampling, so
projecting each stage at its own (small) resolution and summing is the same function class at a
fraction of the cost. For the same reason step 2 runs before the resampling of step 3 (the 12
vertex grids of a 256-px image hold 159k vertices). ReLU rather than GELU:
SegFormer's fuse uses ReLU, and on CPU GELU's backward dominated the head's time.

Why per-level output layers rather than a shared MLP with a level embedding: a level embedding
added before the nonlinearity is just a per-level bias; per-level layers (and a per-level colour
weight) let each level learn its own role - coarse levels carry smooth colour, fine hashed levels
detail - for about 1.2k parameters in all. Why the colour skip: the fused map is at stride 4,
coarser than the finest levels (about one vertex per pixel); the colour at the vertex gives
those levels something to encode before fine-tuning.

Tables: a dense level's table is its vertex grid flattened ``iy * (N_l + 1) + ix`` and
zero-padded to T. A hashed level's entry is the mean of the vertices hashing to it
(scatter-mean; entries nobody hashes to are zero). Only vertices that decoding the image can
touch take part: for a non-square image the grid spans ``max(H, W)`` on both axes and the
vertices beyond the short side (plus the Lagrange taps) would only dilute the means.

Geometry: MiT's convs have odd kernels with padding ``k // 2``, so cell ``(i, j)`` of a stage with
total stride s is centred at pixel ``(x, y) = (s * j, s * i)``; grid vertex ``i`` of level l is at
pixel ``i * max(H, W) / N_l - 0.5`` (``hashflow.grid``). Resampling uses these positions exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hashflow.grid import HashGridConfig, vertex_table_index
from hashflow.models.mit import MiTConfig

__all__ = ["HashHeadConfig", "HashHead", "bilinear_matrix", "sample_at_pixels",
           "vertex_pixel_coords", "used_vertex_count", "scatter_mean", "grid_to_table",
           "grids_to_tables"]


@dataclass(frozen=True)
class HashHeadConfig:
    """Widths of the hash encoder head."""

    embed_dim: int = 128
    """Common width E each stage is projected to before fusion (SegFormer-B0 uses 256)."""
    vertex_hidden: int = 16
    """Hidden width D of the per-vertex MLP."""
    colour_skip: bool = True
    """Feed the input colour at each vertex to the per-level layers."""

    def __post_init__(self) -> None:
        if self.embed_dim < 1 or self.vertex_hidden < 1:
            raise ValueError("HashHeadConfig: embed_dim and vertex_hidden must be positive")


def vertex_pixel_coords(resolution: int, extent: int, device=None,
                        dtype=torch.float32) -> torch.Tensor:
    """Pixel coordinates (N_l + 1,) of the vertices along an axis: ``i * extent / N_l - 0.5``."""
    return torch.arange(resolution + 1, device=device, dtype=dtype) * (extent / resolution) - 0.5


def bilinear_matrix(coords: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """Linear interpolation weights (len(coords), size) of samples at pixel coordinates
    ``coords`` from ``size`` cells at pixels ``0, stride, 2 * stride, ...`` (border-clamped)."""
    position = (coords / stride).clamp(0, size - 1)
    left = position.floor().clamp(max=max(size - 2, 0))
    frac = position - left
    nodes = torch.stack([left, (left + 1).clamp(max=size - 1)], dim=-1).long()
    weights = torch.stack([1 - frac, frac], dim=-1)
    matrix = coords.new_zeros(coords.shape[0], size)
    return matrix.scatter_add(1, nodes, weights)


def sample_at_pixels(feature_map: torch.Tensor, stride: int, xs: torch.Tensor,
                     ys: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of a map whose cell (i, j) sits at pixel (stride * j, stride * i).

    feature_map: (B, C, h, w). xs: (W',), ys: (H',) pixel coordinates (border-clamped).
    Returns (B, C, H', W'), computed separably as ``W_y @ map @ W_x^T`` (fast backward).
    """
    height, width = feature_map.shape[-2:]
    weight_y = bilinear_matrix(ys.to(feature_map.dtype), height, stride)
    weight_x = bilinear_matrix(xs.to(feature_map.dtype), width, stride)
    return weight_y @ feature_map @ weight_x.T


def used_vertex_count(resolution: int, extent: int, count: int, order: int) -> int:
    """How many vertices 0..k-1 along an axis decoding ``count`` pixels can touch.

    The last pixel centre ``count - 1`` is at grid coordinate ``(count - 0.5) * N / extent``;
    its taps reach ``order`` nodes past the floor; indices clamp to N.
    """
    last = math.floor((count - 0.5) * resolution / extent) + order
    return min(resolution, last) + 1


def scatter_mean(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of the rows of values that share an index.

    values: (B, V, F); index: (V,) int64 in [0, size). Returns (B, size, F); empty entries 0.
    """
    sums = values.new_zeros(values.shape[0], size, values.shape[2]).index_add(1, index, values)
    counts = values.new_zeros(size).index_add(0, index, values.new_ones(index.shape[0]))
    return sums / counts.clamp(min=1).view(1, -1, 1)


def grid_to_table(grid: torch.Tensor, config: HashGridConfig, level: int,
                  image_size: tuple[int, int]) -> torch.Tensor:
    """One level's vertex grid (B, F, N+1, N+1) -> its table (B, T, F).

    Dense: the grid flattened ``iy * (N+1) + ix``, zero-padded. Hashed: scatter-mean of the
    vertices the image can touch (see :func:`used_vertex_count`).
    """
    n = config.resolutions()[level]
    flat = grid.flatten(2).transpose(1, 2)  # (B, (N+1)^2, F), row-major iy * (N+1) + ix
    if config.is_dense(level):
        return F.pad(flat, (0, 0, 0, config.table_size - flat.shape[1]))
    extent = max(image_size)
    rows = used_vertex_count(n, extent, image_size[0], config.order)
    cols = used_vertex_count(n, extent, image_size[1], config.order)
    iy, ix = torch.meshgrid(torch.arange(rows, device=grid.device),
                            torch.arange(cols, device=grid.device), indexing="ij")
    index = vertex_table_index(config, level, ix.reshape(-1), iy.reshape(-1))
    used = grid[:, :, :rows, :cols].flatten(2).transpose(1, 2)
    return scatter_mean(used, index, config.table_size)


def grids_to_tables(grids: list[torch.Tensor], config: HashGridConfig,
                    image_size: tuple[int, int]) -> torch.Tensor:
    """Per-level vertex grids [(B, F, N_l+1, N_l+1)] -> tables (B, L, T, F)."""
    tables = [grid_to_table(grid, config, level, image_size) for level, grid in enumerate(grids)]
    return torch.stack(tables, dim=1)


def stage_strides(mit: MiTConfig) -> list[int]:
    """Total stride of each MiT stage (4, 8, 16, 32 for B0)."""
    return [math.prod(mit.strides[:stage + 1]) for stage in range(mit.num_stages)]


def pointwise_linear(layer: nn.Linear, feature_map: torch.Tensor) -> torch.Tensor:
    """Apply a Linear to every pixel of (B, C, H, W) -> (B, C', H, W), channels-first (no copy)."""
    batch, _, height, width = feature_map.shape
    out = layer.weight @ feature_map.reshape(batch, -1, height * width)
    if layer.bias is not None:
        out = out + layer.bias.view(-1, 1)
    return out.view(batch, -1, height, width)


class HashHead(nn.Module):
    """SegFormer-style all-MLP head predicting hash tables from MiT features."""

    def __init__(self, mit: MiTConfig | None = None, grid: HashGridConfig | None = None,
                 config: HashHeadConfig | None = None) -> None:
        super().__init__()
        self.mit = mit or MiTConfig()
        self.grid = grid or HashGridConfig()
        self.config = config or HashHeadConfig()
        width, hidden = self.config.embed_dim, self.config.vertex_hidden
        self.strides = stage_strides(self.mit)
        self.stage_proj = nn.ModuleList(nn.Linear(c, width, bias=stage == 0)
                                        for stage, c in enumerate(self.mit.hidden_sizes))
        self.vertex_in = nn.Linear(width, hidden)
        levels = range(self.grid.levels)
        self.colour_in = nn.ModuleList(nn.Linear(3, hidden) for _ in levels)
        self.vertex_out = nn.ModuleList(nn.Linear(hidden, self.grid.features) for _ in levels)

    def fused_map(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Stage maps [(B, C_s, h_s, w_s)] -> vertex-MLP input (B, D, h_1, w_1) at stride 4."""
        base = self.strides[0]
        ys = torch.arange(features[0].shape[2], device=features[0].device) * float(base)
        xs = torch.arange(features[0].shape[3], device=features[0].device) * float(base)
        terms = [sample_at_pixels(pointwise_linear(proj, f), stride, xs, ys)
                 for proj, f, stride in zip(self.stage_proj, features, self.strides)]
        return pointwise_linear(self.vertex_in, F.relu(torch.stack(terms).sum(dim=0)))

    def level_grid(self, fused: torch.Tensor, image: torch.Tensor, config: HashGridConfig,
                   level: int) -> torch.Tensor:
        """Vertex grid of one level: (B, F, N_l + 1, N_l + 1)."""
        extent = max(image.shape[-2:])
        coords = vertex_pixel_coords(config.resolutions()[level], extent, fused.device)
        hidden = sample_at_pixels(fused, self.strides[0], coords, coords)
        if self.config.colour_skip:
            colour = sample_at_pixels(image, 1, coords, coords)
            hidden = hidden + pointwise_linear(self.colour_in[level], colour)
        return pointwise_linear(self.vertex_out[level], F.relu(hidden))

    def vertex_grids(self, features: list[torch.Tensor], image: torch.Tensor,
                     config: HashGridConfig) -> list[torch.Tensor]:
        """Per-level vertex grids [(B, F, N_l + 1, N_l + 1)] before hashing."""
        self._check_grid(config)
        fused = self.fused_map(features)
        return [self.level_grid(fused, image, config, level) for level in range(config.levels)]

    def forward(self, features: list[torch.Tensor], image: torch.Tensor,
                config: HashGridConfig) -> torch.Tensor:
        """features: MiT stage maps of ``image`` (B, 3, H, W) (the encoder's input);
        config: the grid for this image size (``grid.for_image(H, W)``).
        Returns tables (B, L, T, F)."""
        grids = self.vertex_grids(features, image, config)
        return grids_to_tables(grids, config, tuple(image.shape[-2:]))

    def _check_grid(self, config: HashGridConfig) -> None:
        if (config.levels, config.features) != (self.grid.levels, self.grid.features):
            raise ValueError(f"HashHead was built for {self.grid.levels} levels x "
                             f"{self.grid.features} features, got {config.levels} x "
                             f"{config.features}")
