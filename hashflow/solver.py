"""Flow by coordinate descent through the hash decoder.

Every stage solves the same problem: groups of sample positions ``x`` in img1 share one
displacement ``d`` that minimises the robust photometric loss
``sum rho(decode(H2, x + d) - decode(H1, x))`` with both frames decoded at the same level
truncation ``k``. The descent is Levenberg-Marquardt on ``d`` (a damped Gauss-Newton step with
the analytic coordinate Jacobian through grid and decoder), batched over all groups, and run
coarse to fine over ``k``. Stages go from global to local: a candidate search and multi-start
refinement for the whole image, then tiles of shrinking size, each started from its parent
(and its parent's neighbours), with outlier rejection; finally patches or pixels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as nnf

from hashflow.encoding import HashEncoding
from hashflow.grid import pad_levels, sample_vertex_grids, sample_with_jacobian, stacked_vertex_grids
from hashflow.solver_config import SolverConfig

MIN_VALID_FRACTION = 0.3


@dataclass
class PreparedFrame:
    """An encoding's stacked vertex grids, ready for fast decoding without autograd."""

    grids: torch.Tensor
    """(1, M, F) every level's vertex grid, stacked."""
    offsets: list[int]
    """Start of each level in ``grids``."""
    encoding: HashEncoding
    """The encoding these grids come from (config, size, decoder)."""

    @classmethod
    def from_encoding(cls, encoding: HashEncoding) -> "PreparedFrame":
        grids, offsets = stacked_vertex_grids(encoding.tables[None].detach(), encoding.config)
        return cls(grids, offsets, encoding)

    def colours(self, points: torch.Tensor, levels: int) -> torch.Tensor:
        """Decoded colours (N, 3) at points (N, 2) using the coarsest ``levels`` levels."""
        enc = self.encoding
        features = sample_vertex_grids(self.grids, self.offsets[:levels], points[None],
                                       enc.config, enc.image_size)
        return enc.decoder(pad_levels(features, enc.config))[0]

    def colours_and_jacobian(self, points: torch.Tensor, levels: int):
        """Colours (N, 3) and their derivative w.r.t. (x, y), (N, 3, 2)."""
        enc = self.encoding
        value, grad = sample_with_jacobian(self.grids, self.offsets[:levels], points[None],
                                           enc.config, enc.image_size)
        colour, jac = enc.decoder.forward_with_jacobian(pad_levels(value, enc.config),
                                                        pad_levels(grad, enc.config))
        return colour[0], jac[0]


@dataclass
class Samples:
    """Sample positions in img1, each belonging to one displacement group."""

    positions: torch.Tensor
    """(S, 2) float (x, y) pixel coordinates in img1."""
    groups: torch.Tensor
    """(S,) int64 group of each sample, in ``0 .. count - 1``."""
    count: int
    """Number of groups."""

    @functools.cached_property
    def sizes(self) -> torch.Tensor:
        """(G,) float number of samples in each group (computed once)."""
        return torch.bincount(self.groups, minlength=self.count).float()

    def repeat(self, times: int) -> "Samples":
        """The same samples ``times`` over, copy c forming groups ``c * count + g``."""
        shift = torch.arange(times, device=self.groups.device).repeat_interleave(len(self.groups))
        groups = self.groups.repeat(times) + shift * self.count
        return Samples(self.positions.repeat(times, 1), groups, self.count * times)


@dataclass
class GroupCost:
    """Per-group robust loss and Gauss-Newton normal equations."""

    loss: torch.Tensor
    """(G,) mean robust loss over valid samples (inf when too few are valid)."""
    hessian: torch.Tensor
    """(G, 2, 2) sum of w J^T J."""
    gradient: torch.Tensor
    """(G, 2) sum of w J^T r."""

    def where(self, mask: torch.Tensor, other: "GroupCost") -> "GroupCost":
        """Per group: self where mask, else other."""
        return GroupCost(torch.where(mask, self.loss, other.loss),
                         torch.where(mask.view(-1, 1, 1), self.hessian, other.hessian),
                         torch.where(mask.view(-1, 1), self.gradient, other.gradient))


class PairSolver:
    """Solves displacement groups between two prepared frames."""

    def __init__(self, frame1: PreparedFrame, frame2: PreparedFrame, config: SolverConfig,
                 image1: torch.Tensor | None = None):
        self.frame1, self.frame2, self.config = frame1, frame2, config
        self.image1 = image1
        self.height, self.width = frame1.encoding.image_size
        self.levels = frame1.encoding.config.levels
        self.device = frame1.grids.device

    def schedule(self, start: int) -> list[int]:
        """Level counts from ``start`` to all levels, following the config's schedule."""
        steps = sorted({min(k, self.levels) for k in self.config.level_schedule if k >= start})
        return steps if steps and steps[-1] == self.levels else steps + [self.levels]

    def targets(self, samples: Samples, levels: int) -> torch.Tensor:
        """img1 at the sample positions as seen with ``levels`` levels: (S, 3).

        Coarse levels compare like with like (img1's own decoding, equally blurred); with all
        levels and img1's pixels at hand, the pixels themselves (bicubic between centres).
        """
        if levels >= self.levels and self.image1 is not None:
            return sample_image(self.image1, samples.positions)
        return torch.cat([self.frame1.colours(chunk, levels) for chunk in
                          samples.positions.split(self.config.chunk_size)])

    def cost(self, samples: Samples, targets: torch.Tensor, disp: torch.Tensor, levels: int,
             jacobian: bool = True) -> GroupCost:
        """Robust loss (and normal equations) of every group at displacements disp (G, 2)."""
        count = samples.count
        loss = torch.zeros(count, device=self.device)
        valid = torch.zeros(count, device=self.device)
        hessian = torch.zeros(count, 2, 2, device=self.device)
        gradient = torch.zeros(count, 2, device=self.device)
        size = self.config.chunk_size
        for start in range(0, len(samples.groups), size):
            part = slice(start, start + size)
            groups = samples.groups[part]
            moved = samples.positions[part] + disp[groups]
            inside = self._inside(moved)
            if jacobian:
                colour, jac = self.frame2.colours_and_jacobian(moved, levels)
            else:
                colour = self.frame2.colours(moved, levels)
            residual = colour - targets[part]
            scale = torch.sqrt(residual ** 2 + self.config.robust_eps ** 2)
            loss.index_add_(0, groups, (scale - self.config.robust_eps).sum(-1) * inside)
            valid.index_add_(0, groups, inside)
            if jacobian:
                weight = inside.view(-1, 1) / scale
                hessian.index_add_(0, groups, torch.einsum("sci,sc,scj->sij", jac, weight, jac))
                gradient.index_add_(0, groups, torch.einsum("sci,sc->si", jac, weight * residual))
        total = samples.sizes.clamp(min=1)
        mean = loss / valid.clamp(min=1)
        mean = torch.where(valid >= MIN_VALID_FRACTION * total, mean, torch.full_like(mean, 1e9))
        return GroupCost(mean, hessian, gradient)

    def _inside(self, points: torch.Tensor) -> torch.Tensor:
        x, y = points[:, 0], points[:, 1]
        return ((x >= 0) & (x <= self.width - 1) & (y >= 0) & (y <= self.height - 1)).float()

    def refine(self, samples: Samples, disp: torch.Tensor, start_level: int,
               prior_weight: float = 0.0):
        """Levenberg-Marquardt over the coarse-to-fine schedule. Returns (disp, loss (G,)).

        prior_weight: lambda of a quadratic pull ``lambda * |d - d_start|**2`` (per sample)
        towards the starting displacements, so weakly textured groups keep their parent's
        motion instead of wandering into noise minima.
        """
        cost, prior = None, Prior(disp.clone(), prior_weight)
        for levels in self.schedule(start_level):
            targets = self.targets(samples, levels)
            disp, cost = self._levenberg_marquardt(samples, targets, disp, levels, prior)
        return disp, cost.loss

    def _levenberg_marquardt(self, samples, targets, disp, levels, prior: "Prior"):
        cost = prior.add(self.cost(samples, targets, disp, levels), disp, samples)
        damping = torch.full((samples.count,), 1e-2, device=self.device)
        for _ in range(self.config.iterations):
            step = damped_step(cost.hessian, cost.gradient, damping, self.config.max_step)
            trial = prior.add(self.cost(samples, targets, disp + step, levels), disp + step,
                              samples)
            better = trial.loss < cost.loss
            disp = torch.where(better.view(-1, 1), disp + step, disp)
            cost = trial.where(better, cost)
            damping = torch.where(better, damping * 0.3, damping * 10).clamp(1e-6, 1e6)
        return disp, cost

    def best_candidate(self, samples: Samples, candidates: torch.Tensor, levels: int):
        """Per group, the candidate (C, G, 2) with the lowest loss. Returns (disp, loss)."""
        num = candidates.shape[0]
        repeated = samples.repeat(num)
        targets = self.targets(samples, levels).repeat(num, 1)
        loss = self.cost(repeated, targets, candidates.reshape(-1, 2), levels, jacobian=False).loss
        loss = loss.view(num, samples.count)
        best = loss.argmin(dim=0)
        chosen = candidates[best, torch.arange(samples.count, device=self.device)]
        return chosen, loss.min(dim=0).values


@dataclass
class Prior:
    """Quadratic pull towards start displacements: ``weight * |d - centre|**2`` per sample."""

    centre: torch.Tensor
    """(G, 2) displacements the groups are pulled towards."""
    weight: float
    """Strength lambda per sample and px**2 (0 disables the prior)."""

    def add(self, cost: GroupCost, disp: torch.Tensor, samples: Samples) -> GroupCost:
        """cost with the prior added to loss (mean per sample), gradient and hessian (sums)."""
        if self.weight <= 0:
            return cost
        count = samples.sizes
        delta = disp - self.centre
        loss = cost.loss + self.weight * (delta ** 2).sum(-1)
        eye = torch.eye(2, device=disp.device)
        hessian = cost.hessian + 2 * self.weight * count.view(-1, 1, 1) * eye
        gradient = cost.gradient + 2 * self.weight * count.view(-1, 1) * delta
        return GroupCost(loss, hessian, gradient)


def sample_image(image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bicubic samples (N, 3) of image (3, H, W) at points (N, 2) (x, y), border-clamped."""
    height, width = image.shape[-2:]
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], device=points.device)
    grid = (points * scale - 1).view(1, 1, -1, 2)
    sampled = nnf.grid_sample(image[None], grid, mode="bicubic", padding_mode="border",
                              align_corners=True)
    return sampled[0, :, 0].T


def damped_step(hessian, gradient, damping, max_step: float) -> torch.Tensor:
    """Solve (H + damping * diag(H)) step = -g per group (2x2, closed form), norm-clipped."""
    a = hessian[:, 0, 0] * (1 + damping) + 1e-9
    d = hessian[:, 1, 1] * (1 + damping) + 1e-9
    b = hessian[:, 0, 1]
    det = a * d - b * b
    gx, gy = gradient[:, 0], gradient[:, 1]
    step = -torch.stack([d * gx - b * gy, a * gy - b * gx], dim=1) / det.view(-1, 1)
    norm = step.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return step * torch.clamp(max_step / norm, max=1.0)
