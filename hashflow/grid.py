"""Multiresolution hash grid with Lagrange multi-sampling: the functional core.

A grid has ``L`` levels; level ``l`` has ``N_l + 1`` vertices per axis over the image. Coarse
levels whose ``(N_l + 1)**2`` vertices fit in the table are *dense*; finer ones are *hashed* with
the Instant-NGP hash. Features at a real coordinate are read with Lagrange interpolation of
order ``n`` over the ``2n x 2n`` surrounding vertices (``n = 1`` is bilinear).

Coordinates: pixel ``(row i, col j)`` has its centre at ``(x, y) = (j, i)``. With ``S = max(H, W)``
the point ``x`` lies at grid coordinate ``(x + 0.5) * N_l / S`` on level ``l``. Vertices outside
``0 .. N_l`` are clamped to the border (edge replication).

Tables are tensors ``(B, L, T, F)``; dense levels use the first ``(N_l + 1)**2`` entries.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as nnf

HASH_PRIME_Y = 2654435761
UINT32_MASK = 0xFFFFFFFF


@dataclass(frozen=True)
class HashGridConfig:
    """Shape of a multiresolution hash grid (DESIGN.md section 2)."""

    levels: int = 12
    """Number of resolution levels L."""
    features: int = 2
    """Features per level F (the decoder sees L * F)."""
    log2_table_size: int = 12
    """Table entries per level T = 2**log2_table_size."""
    base_resolution: int = 16
    """Cells per axis on the coarsest level N_min."""
    finest_resolution: int = 256
    """Cells per axis on the finest level N_max (one per pixel for a 256-px image)."""
    order: int = 2
    """Lagrange order n: (2n)**2 taps per level; 1 is bilinear."""

    def __post_init__(self) -> None:
        if self.order not in (1, 2, 3):
            raise ValueError(f"order must be 1, 2 or 3, got {self.order}")
        if self.levels < 1 or self.features < 1:
            raise ValueError("levels and features must be positive")
        if not 1 <= self.base_resolution <= self.finest_resolution:
            raise ValueError("need 1 <= base_resolution <= finest_resolution, got "
                             f"{self.base_resolution}, {self.finest_resolution}")

    @property
    def table_size(self) -> int:
        """Entries per level table, T."""
        return 2 ** self.log2_table_size

    @property
    def feature_dim(self) -> int:
        """Length of the concatenated feature vector, L * F."""
        return self.levels * self.features

    def resolutions(self) -> list[int]:
        """``N_l = floor(N_min * b**l)`` with ``b = (N_max / N_min) ** (1 / (L - 1))``."""
        if self.levels == 1:
            return [self.base_resolution]
        growth = math.log(self.finest_resolution / self.base_resolution) / (self.levels - 1)
        return [int(math.floor(self.base_resolution * math.exp(growth * level) + 1e-6))
                for level in range(self.levels)]

    def is_dense(self, level: int) -> bool:
        """True when level ``level`` stores every vertex without hashing."""
        return (self.resolutions()[level] + 1) ** 2 <= self.table_size

    def for_image(self, height: int, width: int) -> "HashGridConfig":
        """This config with the finest resolution scaled to the image (``max(H, W)`` cells)."""
        finest = max(int(height), int(width), self.base_resolution)
        return dataclasses.replace(self, finest_resolution=finest)

    def with_order(self, order: int) -> "HashGridConfig":
        """This config with another Lagrange order."""
        return dataclasses.replace(self, order=order)


def hash_index(ix: torch.Tensor, iy: torch.Tensor, table_size: int) -> torch.Tensor:
    """Instant-NGP spatial hash ``(ix * 1 XOR iy * 2654435761) mod T`` in uint32 arithmetic.

    ix, iy: integer tensors of any (equal) shape. Returns int64 indices in ``[0, T)``.
    """
    hx = ix.long() & UINT32_MASK
    hy = (iy.long() * HASH_PRIME_Y) & UINT32_MASK
    return torch.bitwise_xor(hx, hy) % table_size


def vertex_table_index(config: HashGridConfig, level: int, ix: torch.Tensor,
                       iy: torch.Tensor) -> torch.Tensor:
    """Table entry of vertices ``(ix, iy)`` (clamped to ``0 .. N_l``) on ``level``."""
    n = config.resolutions()[level]
    ix, iy = ix.clamp(0, n), iy.clamp(0, n)
    if config.is_dense(level):
        return iy * (n + 1) + ix
    return hash_index(ix, iy, config.table_size)


@functools.lru_cache(maxsize=None)
def lagrange_coefficients(order: int) -> tuple[tuple[float, ...], ...]:
    """Power-basis coefficients C[j][p] with ``w_j(t) = sum_p C[j][p] t**p``.

    ``w_j(t) = prod_{m != j} (t - m) / (j - m)`` over nodes ``-(n-1) .. n``; expanding it once
    turns every weight evaluation into one small matrix product.
    """
    nodes = list(range(1 - order, order + 1))
    rows = []
    for j in nodes:
        poly = np.poly1d([1.0])
        for m in nodes:
            if m != j:
                poly = poly * np.poly1d([1.0, -m]) / (j - m)
        rows.append(tuple(float(c) for c in poly.coeffs[::-1]))
    return tuple(rows)


def _coefficient_matrix(order: int, like: torch.Tensor) -> torch.Tensor:
    return _coefficient_tensor(order, like.dtype, like.device)


@functools.lru_cache(maxsize=None)
def _coefficient_tensor(order: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """lagrange_coefficients as a tensor, built once per (order, dtype, device); read-only."""
    return torch.tensor(lagrange_coefficients(order), dtype=dtype, device=device)


def _powers(t: torch.Tensor, count: int) -> torch.Tensor:
    """(..., count) powers t**0 .. t**(count-1) by repeated products (pow is slow on CPU)."""
    columns = [torch.ones_like(t)]
    for _ in range(count - 1):
        columns.append(columns[-1] * t)
    return torch.stack(columns, dim=-1)


def lagrange_weights(t: torch.Tensor, order: int) -> torch.Tensor:
    """1-D Lagrange weights for nodes at offsets ``-(n-1) .. n`` from ``floor(p)``.

    t: (...) fractional part ``p - floor(p)`` in [0, 1). Returns (..., 2n) weights
    ``w_j(t) = prod_{m != j} (t - m) / (j - m)``; they sum to one.
    """
    return _powers(t, 2 * order) @ _coefficient_matrix(order, t).T


def lagrange_derivatives(t: torch.Tensor, order: int) -> torch.Tensor:
    """d w_j / d t for :func:`lagrange_weights`: (...) -> (..., 2n)."""
    exponents = torch.arange(1, 2 * order, device=t.device, dtype=t.dtype)
    lower = _powers(t, 2 * order - 1) * exponents  # d t**p / dt = p t**(p-1), p >= 1
    return lower @ _coefficient_matrix(order, t)[:, 1:].T


def tap_offsets(order: int, device: torch.device | None = None) -> torch.Tensor:
    """Integer node offsets ``-(n-1) .. n`` as an int64 tensor of length 2n."""
    return torch.arange(1 - order, order + 1, device=device)


def _axis_taps(coord: torch.Tensor, order: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Node indices (int64) and Lagrange weights, each (..., 2n), for grid coordinates."""
    base = torch.floor(coord.detach())
    weights = lagrange_weights(coord - base, order)
    nodes = base.long().unsqueeze(-1) + tap_offsets(order, coord.device)
    return nodes, weights


def grid_coordinates(points: torch.Tensor, resolutions: torch.Tensor, extent: int) -> torch.Tensor:
    """Pixel coordinates (..., 2) -> per-level grid coordinates (..., L, 2)."""
    scale = resolutions.to(points.dtype) / extent
    return (points.unsqueeze(-2) + 0.5) * scale.unsqueeze(-1)


def stacked_vertex_grids(tables: torch.Tensor, config: HashGridConfig,
                         levels: int | None = None) -> tuple[torch.Tensor, list[int]]:
    """Every level's (virtual) vertex grid, flattened row-major and stacked.

    tables: (B, L, T, F) -> (B, sum_l (N_l + 1)**2, F) plus each level's start offset.
    Hashing happens here once per vertex instead of once per tap; the gather keeps gradients.
    """
    kept = config.levels if levels is None else min(levels, config.levels)
    flat = tables.reshape(tables.shape[0], -1, tables.shape[-1])
    indices, offsets, start = [], [], 0
    for level, n in enumerate(config.resolutions()[:kept]):
        entries = level_vertex_indices(config, level, tables.device)
        indices.append(entries + level * config.table_size)
        offsets.append(start)
        start += (n + 1) ** 2
    return flat[:, torch.cat(indices)], offsets


def sample_vertex_grids(grids: torch.Tensor, offsets: list[int], points: torch.Tensor,
                        config: HashGridConfig, image_size: tuple[int, int]) -> torch.Tensor:
    """Lagrange-interpolated features from stacked vertex grids (see stacked_vertex_grids).

    grids: (B, M, F). points: (B, N, 2) float (x, y). Returns (B, N, k * F) for the k levels
    the grids hold; differentiable w.r.t. grids and points.
    """
    batch, count = points.shape[:2]
    kept, feats, taps = len(offsets), grids.shape[-1], 2 * config.order
    res = torch.tensor(config.resolutions()[:kept], device=points.device)
    coords = grid_coordinates(points, res, max(image_size))
    gathered, frac = _gather_taps(grids, offsets, coords, res, config.order)
    wx, wy = (lagrange_weights(frac[..., a], config.order).reshape(-1, 1, taps) for a in (0, 1))
    along_x = torch.bmm(wy, gathered).view(-1, taps, feats)
    return torch.bmm(wx, along_x).view(batch, count, kept * feats)


def _gather_taps(grids: torch.Tensor, offsets: list[int], coords: torch.Tensor,
                 res: torch.Tensor, order: int):
    """Gathered vertex values (B*N*k, 2n, 2n*F) and the integer-free tap parameters."""
    taps = 2 * order
    base = torch.floor(coords)
    frac = coords - base
    nodes = base.long().unsqueeze(-1) + tap_offsets(order, coords.device)  # (B, N, k, 2, 2n)
    limit = res.view(-1, 1)
    cols = torch.minimum(nodes[..., 0, :].clamp(min=0), limit)
    rows = torch.minimum(nodes[..., 1, :].clamp(min=0), limit) * (limit + 1)
    rows = rows + torch.tensor(offsets, device=coords.device).view(-1, 1)
    index = (rows.unsqueeze(-1) + cols.unsqueeze(-2)).reshape(grids.shape[0], -1, 1)
    gathered = torch.gather(grids, 1, index.expand(-1, -1, grids.shape[-1]))
    return gathered.view(-1, taps, taps * grids.shape[-1]), frac


def sample_with_jacobian(grids: torch.Tensor, offsets: list[int], points: torch.Tensor,
                         config: HashGridConfig, image_size: tuple[int, int]):
    """Features and their derivatives w.r.t. x and y at points, without autograd.

    grids, offsets: from :func:`stacked_vertex_grids` (no grad needed). points: (B, N, 2).
    Returns features (B, N, k * F) and d features / d (x, y) as (B, N, 2, k * F).
    """
    batch, count = points.shape[:2]
    kept, feats, taps = len(offsets), grids.shape[-1], 2 * config.order
    res = torch.tensor(config.resolutions()[:kept], device=points.device)
    coords = grid_coordinates(points, res, max(image_size))  # (B, N, k, 2)
    gathered, frac = _gather_taps(grids, offsets, coords, res, config.order)
    wx, wy = (lagrange_weights(frac[..., a], config.order).reshape(-1, taps) for a in (0, 1))
    dwx, dwy = (lagrange_derivatives(frac[..., a], config.order).reshape(-1, taps)
                for a in (0, 1))
    rows = torch.bmm(torch.stack([wy, dwy], 1), gathered).view(-1, 2, taps, feats)
    value = torch.einsum("mx,mxf->mf", wx, rows[:, 0])
    d_dx = torch.einsum("mx,mxf->mf", dwx, rows[:, 0])
    d_dy = torch.einsum("mx,mxf->mf", wx, rows[:, 1])
    scale = (res.to(points.dtype) / max(image_size)).repeat(batch * count).view(-1, 1)
    grad = torch.stack([d_dx * scale, d_dy * scale], 1)  # (M, 2, F)
    grad = grad.view(batch, count, kept, 2, feats).permute(0, 1, 3, 2, 4)
    return value.view(batch, count, kept * feats), grad.reshape(batch, count, 2, kept * feats)


def sample_points(tables: torch.Tensor, points: torch.Tensor, config: HashGridConfig,
                  image_size: tuple[int, int], levels: int | None = None) -> torch.Tensor:
    """Interpolated features at arbitrary points.

    tables: (B, L, T, F). points: (B, N, 2) float (x, y) pixel coordinates.
    image_size: (H, W) of the encoded image. levels: keep only the coarsest k levels
    (finer ones read as zero), for coarse-to-fine decoding.
    Returns: features (B, N, L * F); differentiable w.r.t. tables and points.
    """
    grids, offsets = stacked_vertex_grids(tables, config, levels)
    features = sample_vertex_grids(grids, offsets, points, config, image_size)
    return pad_levels(features, config)


def pad_levels(features: torch.Tensor, config: HashGridConfig) -> torch.Tensor:
    """Zero-pad truncated features (..., k * F) to the decoder's (..., L * F)."""
    missing = config.feature_dim - features.shape[-1]
    return nnf.pad(features, (0, missing)) if missing > 0 else features


def vertex_grid(tables: torch.Tensor, config: HashGridConfig, level: int) -> torch.Tensor:
    """The level's (virtual) vertex grid: tables (B, L, T, F) -> (B, F, N_l + 1, N_l + 1)."""
    n = config.resolutions()[level]
    grid = tables[:, level, level_vertex_indices(config, level, tables.device), :]
    return grid.transpose(1, 2).reshape(tables.shape[0], -1, n + 1, n + 1)


def level_vertex_indices(config: HashGridConfig, level: int, device=None) -> torch.Tensor:
    """Table entry of every vertex of ``level``, row-major: ((N_l + 1)**2,) int64."""
    idx = torch.arange(config.resolutions()[level] + 1, device=device)
    return vertex_table_index(config, level, idx.view(1, -1), idx.view(-1, 1)).reshape(-1)


def axis_weight_matrix(count: int, resolution: int, extent: int, order: int,
                       offset: torch.Tensor | float = 0.0, dtype=torch.float32,
                       device=None) -> torch.Tensor:
    """Interpolation matrix (count, N_l + 1) for pixel centres ``0 .. count-1`` shifted by offset.

    Rows hold the Lagrange weights of one pixel over the clamped vertex indices; summed
    duplicates implement the border clamp. Differentiable w.r.t. ``offset`` (a scalar tensor).
    """
    pixels = torch.arange(count, dtype=dtype, device=device) + offset
    coord = (pixels + 0.5) * (resolution / extent)
    nodes, weights = _axis_taps(coord, order)
    matrix = torch.zeros(count, resolution + 1, dtype=weights.dtype, device=device)
    return matrix.scatter_add(1, nodes.clamp(0, resolution), weights)


def sample_grid(tables: torch.Tensor, config: HashGridConfig, image_size: tuple[int, int],
                offset: torch.Tensor | None = None, levels: int | None = None) -> torch.Tensor:
    """Features on the whole regular pixel grid (optionally shifted), the fast full-frame path.

    On a regular grid the Lagrange weights are separable, so level l is
    ``W_y @ G_l @ W_x^T`` with ``G_l`` its vertex grid, gathered once.
    tables: (B, L, T, F). image_size: (H, W). offset: optional (2,) (dx, dy) common to all
    pixels (differentiable). levels: keep only the coarsest k levels.
    Returns: features (B, L * F, H, W), equal to ``sample_points`` at the pixel centres + offset.
    """
    height, width = image_size
    extent = max(height, width)
    dx, dy = (0.0, 0.0) if offset is None else (offset[0], offset[1])
    kept = config.levels if levels is None else min(levels, config.levels)
    out = []
    for level, n in enumerate(config.resolutions()):
        if level >= kept:
            out.append(tables.new_zeros(tables.shape[0], config.features, height, width))
            continue
        grid = vertex_grid(tables, config, level)
        wy = axis_weight_matrix(height, n, extent, config.order, dy, tables.dtype, tables.device)
        wx = axis_weight_matrix(width, n, extent, config.order, dx, tables.dtype, tables.device)
        out.append(wy @ grid @ wx.T)
    return torch.cat(out, dim=1)


def init_tables(config: HashGridConfig, batch: int = 1, scale: float = 1e-4,
                generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Fresh tables (B, L, T, F), uniform in [-scale, scale] as in Instant-NGP."""
    shape = (batch, config.levels, config.table_size, config.features)
    tables = torch.rand(shape, generator=generator, device=device) * 2 - 1
    return tables * scale

