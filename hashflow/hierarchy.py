"""The global-to-local hierarchy: image -> tiles -> patches or pixels.

Each stage starts from its parent's displacement field (and the parent's neighbours, so a
tile straddling a motion boundary can pick the right side), refines with the coarse-to-fine
solver, and rejects outliers against the median of its neighbours. Nothing assumes a single
translation: every tile and point keeps its own displacement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as nnf

from hashflow.solver import PairSolver, Samples

MAX_SEARCH_SHARE = 0.4
"""The global search never considers motions over this share of the shorter image side: on a
small image, a large shift leaves so little overlap that a wrong candidate can score best."""


@dataclass
class TileField:
    """A displacement per tile on a regular tiling of img1."""

    disp: torch.Tensor
    """(gh, gw, 2) displacement (u, v) of each tile."""
    centres_x: torch.Tensor
    """(gw,) x of each tile column's centre."""
    centres_y: torch.Tensor
    """(gh,) y of each tile row's centre."""

    def at(self, points: torch.Tensor) -> torch.Tensor:
        """Bilinear interpolation of the field at points (N, 2) -> (N, 2), clamped at borders."""
        ix, tx = _axis_interp(self.centres_x, points[:, 0])
        iy, ty = _axis_interp(self.centres_y, points[:, 1])
        gh, gw = self.disp.shape[:2]
        ix1, iy1 = (ix + 1).clamp(max=gw - 1), (iy + 1).clamp(max=gh - 1)
        tx, ty, d = tx.unsqueeze(-1), ty.unsqueeze(-1), self.disp
        top = d[iy, ix] * (1 - tx) + d[iy, ix1] * tx
        bottom = d[iy1, ix] * (1 - tx) + d[iy1, ix1] * tx
        return top * (1 - ty) + bottom * ty

    def neighbours_at(self, points: torch.Tensor) -> torch.Tensor:
        """Displacements of the 3x3 tiles around each point's tile: (9, N, 2)."""
        gh, gw = self.disp.shape[:2]
        col = _nearest(self.centres_x, points[:, 0])
        row = _nearest(self.centres_y, points[:, 1])
        found = []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                found.append(self.disp[(row + dy).clamp(0, gh - 1), (col + dx).clamp(0, gw - 1)])
        return torch.stack(found)


def _axis_interp(centres: torch.Tensor, coord: torch.Tensor):
    """Left index (into a padded axis) and weight for linear interpolation along one axis."""
    if len(centres) == 1:
        return torch.zeros_like(coord, dtype=torch.long), torch.zeros_like(coord)
    index = (torch.searchsorted(centres, coord.contiguous()) - 1).clamp(0, len(centres) - 2)
    left, right = centres[index], centres[index + 1]
    return index, ((coord - left) / (right - left)).clamp(0, 1)


def _nearest(centres: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
    return (coord.view(-1, 1) - centres.view(1, -1)).abs().argmin(dim=1)


def tile_centres(extent: int, tile: int, device) -> torch.Tensor:
    """Centres of the tiles covering ``0 .. extent - 1`` (the last may be partial)."""
    starts = torch.arange(0, extent, tile, device=device, dtype=torch.float32)
    ends = (starts + tile).clamp(max=extent)
    return (starts + ends - 1) / 2


def tile_samples(height: int, width: int, tile: int, per_tile: int, device):
    """Samples on a regular sub-grid, grouped by tile. Returns (Samples, (gh, gw))."""
    stride = max(1, int(round(tile / math.sqrt(per_tile))))
    ys = torch.arange(stride // 2, height, stride, device=device)
    xs = torch.arange(stride // 2, width, stride, device=device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    gw, gh = math.ceil(width / tile), math.ceil(height / tile)
    groups = (grid_y // tile) * gw + grid_x // tile
    positions = torch.stack([grid_x, grid_y], -1).reshape(-1, 2).float()
    return Samples(positions, groups.reshape(-1), gh * gw), (gh, gw)


def start_level_for(extent: int, tile: float, resolutions: list[int]) -> int:
    """Coarsest useful level count for a region of side ``tile``: cells about tile / 2 wide."""
    fitting = sum(1 for n in resolutions if n <= 2 * extent / tile)
    return max(2, fitting)


def global_stage(solver: PairSolver, generator: torch.Generator) -> tuple[torch.Tensor, float]:
    """One displacement for the whole image: candidate search, then multi-start refinement."""
    cfg = solver.config
    samples = random_pixels(solver, cfg.search_samples, generator)
    radius = min(cfg.search_radius, MAX_SEARCH_SHARE * min(solver.height, solver.width))
    candidates = disk_candidates(radius, cfg.search_step, solver.device)
    cost = solver.cost(samples.repeat(len(candidates)),
                       solver.targets(samples, cfg.search_levels).repeat(len(candidates), 1),
                       candidates, cfg.search_levels, jacobian=False).loss
    starts = distinct_best(candidates, cost, cfg.starts, min_distance=2 * cfg.search_step)
    disp, loss = solver.refine(samples.repeat(len(starts)), starts, cfg.search_levels)
    best = int(loss.argmin())
    return disp[best], float(loss[best])


def image_refinement(solver: PairSolver, disp: torch.Tensor,
                     generator: torch.Generator) -> torch.Tensor:
    """Image mode's final pass: all levels, many pixels, one displacement."""
    samples = random_pixels(solver, solver.config.image_samples, generator)
    refined, _ = solver.refine(samples, disp.view(1, 2), solver.levels)
    return refined[0]


def random_pixels(solver: PairSolver, count: int, generator: torch.Generator) -> Samples:
    """Up to ``count`` distinct random pixel centres of img1, all in group 0."""
    total = solver.height * solver.width
    chosen = torch.randperm(total, generator=generator)[:count].to(solver.device)
    positions = torch.stack([chosen % solver.width, chosen // solver.width], -1).float()
    return Samples(positions, torch.zeros(len(chosen), dtype=torch.long,
                                          device=solver.device), 1)


def disk_candidates(radius: float, step: float, device) -> torch.Tensor:
    """Grid points (C, 2) with spacing ``step`` inside the disk of ``radius``."""
    axis = torch.arange(-radius, radius + 1e-6, step, device=device)
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([gx, gy], -1).reshape(-1, 2)
    return grid[grid.norm(dim=1) <= radius + 1e-6]


def distinct_best(candidates: torch.Tensor, cost: torch.Tensor, count: int,
                  min_distance: float) -> torch.Tensor:
    """The ``count`` lowest-cost candidates, each at least ``min_distance`` from the others."""
    chosen = []
    for index in cost.argsort().tolist():
        point = candidates[index]
        if all((point - other).norm() >= min_distance for other in chosen):
            chosen.append(point)
        if len(chosen) == count:
            break
    return torch.stack(chosen)


def tile_stage(solver: PairSolver, parent: TileField | torch.Tensor, tile: int) -> TileField:
    """Refine a field on tiles of side ``tile``, starting from the parent field or global d."""
    cfg = solver.config
    samples, (gh, gw) = tile_samples(solver.height, solver.width, tile, cfg.tile_samples,
                                     solver.device)
    field = TileField(torch.zeros(gh, gw, 2, device=solver.device),
                      tile_centres(solver.width, tile, solver.device),
                      tile_centres(solver.height, tile, solver.device))
    centres = tile_centre_points(field)
    start = max(cfg.tile_start_level, start_level_for(max(solver.height, solver.width), tile,
                                                      solver.frame1.encoding.config.resolutions()))
    candidates = parent_candidates(parent, centres)
    init, _ = solver.best_candidate(samples, candidates, start)
    disp, loss = solver.refine(samples, init, start, cfg.tile_prior)
    field.disp = disp.view(gh, gw, 2)
    field.disp = reject_outliers(solver, samples, field, loss, solver.levels)
    return field


def tile_centre_points(field: TileField) -> torch.Tensor:
    """(gh * gw, 2) centre of every tile, row-major."""
    gy, gx = torch.meshgrid(field.centres_y, field.centres_x, indexing="ij")
    return torch.stack([gx, gy], -1).reshape(-1, 2)


def parent_candidates(parent: TileField | torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Starting displacements (C, N, 2) for points: parent interpolation + its neighbours."""
    if isinstance(parent, torch.Tensor):
        return parent.view(1, 1, 2).expand(1, len(points), 2)
    return torch.cat([parent.at(points)[None], parent.neighbours_at(points)])


def reject_outliers(solver: PairSolver, samples: Samples, field: TileField,
                    loss: torch.Tensor, levels: int) -> torch.Tensor:
    """Replace tiles whose neighbours' median costs at most ``outlier_tolerance`` more."""
    gh, gw = field.disp.shape[:2]
    padded = nnf.pad(field.disp.permute(2, 0, 1)[None], (1, 1, 1, 1), mode="replicate")
    windows = nnf.unfold(padded, 3).view(2, 9, gh * gw)
    median = windows.median(dim=1).values.T  # (G, 2)
    targets = solver.targets(samples, levels)
    median_loss = solver.cost(samples, targets, median, levels, jacobian=False).loss
    take = median_loss <= loss * (1 + solver.config.outlier_tolerance)
    disp = torch.where(take.view(-1, 1), median, field.disp.view(-1, 2))
    return disp.view(gh, gw, 2)


def point_samples(points: torch.Tensor, radius: int) -> Samples:
    """Each point's (2r+1)**2 patch (r = 0: the point alone), grouped per point."""
    axis = torch.arange(-radius, radius + 1, device=points.device, dtype=points.dtype)
    oy, ox = torch.meshgrid(axis, axis, indexing="ij")
    offsets = torch.stack([ox, oy], -1).reshape(-1, 2)
    positions = (points[:, None, :] + offsets[None]).reshape(-1, 2)
    groups = torch.arange(len(points), device=points.device).repeat_interleave(len(offsets))
    return Samples(positions, groups, len(points))


def point_stage(solver: PairSolver, parent: TileField | torch.Tensor, points: torch.Tensor,
                radius: int) -> torch.Tensor:
    """Per-point displacements (N, 2) for pixels (radius 0) or patches, from the parent field."""
    samples = point_samples(points, radius)
    start = solver.config.local_start_level
    init, _ = solver.best_candidate(samples, parent_candidates(parent, points), start)
    disp, _ = solver.refine(samples, init, start, solver.config.point_prior)
    return disp
