"""`FlowEstimator` (caches encodings) and the one-liner `hashflow.estimate` on top of it."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch

from hashflow.encoding import HashEncoding
from hashflow.fit import default_device, fit_image
from hashflow.hierarchy import global_stage, image_refinement, point_stage, tile_stage
from hashflow.images import to_image_tensor
from hashflow.solver import PairSolver, PreparedFrame
from hashflow.solver_config import SolverConfig, get_preset

MODES = ("pixel", "patch", "image")
ENCODERS = ("auto", "pretrained", "direct")
MIN_FLOW_SIDE = 16
POINTS_PER_CHUNK = 8192


def solve_pair(enc1: HashEncoding, enc2: HashEncoding, mode: str, points: torch.Tensor | None,
               config: SolverConfig, seed: int = 0,
               image1: torch.Tensor | None = None) -> torch.Tensor:
    """Flow between two encodings: (N, 2) at points (N, 2), or dense (H, W, 2) when None.

    image1: img1's pixels (3, H, W), the target of the final full-resolution comparisons
    (None compares with img1's decoding throughout).
    """
    solver = PairSolver(PreparedFrame.from_encoding(enc1), PreparedFrame.from_encoding(enc2),
                        config, image1)
    generator = torch.Generator().manual_seed(seed)
    height, width = enc1.image_size
    with torch.no_grad():
        disp, _ = global_stage(solver, generator)
        if mode == "image":
            disp = image_refinement(solver, disp, generator)
            count = (height, width) if points is None else (len(points),)
            return disp.expand(*count, 2).clone()
        field = disp
        for tile in config.tile_sizes:
            if tile < max(height, width):
                field = tile_stage(solver, field, tile)
        targets = pixel_centres(height, width, enc1.device) if points is None else points
        radius = config.patch_radius if mode == "patch" else 0
        flow = torch.cat([point_stage(solver, field, chunk, radius)
                          for chunk in targets.split(POINTS_PER_CHUNK)])
    return flow if points is not None else flow.view(height, width, 2)


def pixel_centres(height: int, width: int, device) -> torch.Tensor:
    """(H * W, 2) float (x, y) of every pixel centre, row-major."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32),
                            torch.arange(width, device=device, dtype=torch.float32),
                            indexing="ij")
    return torch.stack([xs, ys], -1).reshape(-1, 2)


class FlowEstimator:
    """Predictor-style flow estimation that encodes each distinct frame once.

    order: Lagrange order (1 = bilinear, 2). encoder: "direct" (per-image fit), "pretrained"
    (shipped autoencoder + short fine-tune) or "auto" (pretrained when weights for this order
    are shipped, else direct). config: a preset name ("default", "fast", "accurate") or a
    SolverConfig; options: SolverConfig fields overriding it.
    """

    def __init__(self, order: int = 2, encoder: str = "auto", device=None,
                 config: str | SolverConfig = "default", seed: int = 0, cache_size: int = 8,
                 **options):
        if order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {order!r}")
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        self.order, self.seed = order, seed
        self.device = default_device(device)
        self.config = get_preset(config).replace(**options)
        self.encoder = resolve_encoder(encoder, order)
        self._autoencoder = None
        self._cache: OrderedDict[str, HashEncoding] = OrderedDict()
        self._cache_size = cache_size

    def encode(self, image) -> HashEncoding:
        """Encode an image (cached by content). image: any accepted image form."""
        tensor = to_image_tensor(image, min_side=MIN_FLOW_SIDE)
        key = _content_key(tensor)
        if key not in self._cache:
            self._cache[key] = self._encode_uncached(tensor.to(self.device))
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return self._cache[key]

    def _encode_uncached(self, image: torch.Tensor) -> HashEncoding:
        cfg = self.config
        if self.encoder == "direct":
            return fit_image(image, steps=cfg.encode_steps, order=self.order, device=self.device,
                             seed=self.seed, lr=cfg.encode_lr, level_dropout=cfg.level_dropout)
        model = self._pretrained()
        encoding = model.encode(image)
        if cfg.finetune_steps > 0:
            encoding = model.finetune(encoding, image, steps=cfg.finetune_steps)
        return encoding

    def _pretrained(self):
        if self._autoencoder is None:
            from hashflow.autoencoder import load_pretrained
            self._autoencoder = load_pretrained(order=self.order, device=self.device)
        return self._autoencoder

    def estimate(self, img1, img2, mode: str = "patch", points=None):
        """Flow from img1 to img2: ``img1(x) ~ img2(x + flow(x))``.

        img1, img2: numpy (H, W, 3) uint8 / float in [0, 1] / grayscale (H, W), or torch
        (3, H, W) or (B, 3, H, W). points: None for dense flow, or (N, 2) float (x, y) in img1
        (torch batches also take (B, N, 2)). mode: "pixel", "patch" or "image".
        Returns: numpy (H, W, 2) or (N, 2) float32 for numpy input; torch (B, 2, H, W) or
        (B, N, 2) for a torch batch, on the input's device.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if isinstance(img1, torch.Tensor) and img1.dim() == 4:
            return self._estimate_batch(img1, img2, mode, points)
        first, second = _matching_pair(img1, img2)
        pts = None if points is None else validate_points(points, first.shape[1:])
        flow = self._estimate_one(first, second, mode, pts)
        if isinstance(img1, torch.Tensor):
            return flow.to(img1.device)
        return flow.cpu().numpy().astype(np.float32)

    def _estimate_one(self, img1: torch.Tensor, img2: torch.Tensor, mode: str, points):
        enc1, enc2 = self.encode(img1), self.encode(img2)
        pts = None if points is None else points.to(self.device)
        return solve_pair(enc1, enc2, mode, pts, self.config, self.seed, img1.to(self.device))

    def _estimate_batch(self, img1: torch.Tensor, img2: torch.Tensor, mode: str, points):
        if not isinstance(img2, torch.Tensor) or img2.shape != img1.shape:
            raise ValueError(f"img2 must be a tensor of img1's shape {tuple(img1.shape)}, got "
                             f"{tuple(getattr(img2, 'shape', ()))}")
        flows = []
        for b in range(img1.shape[0]):
            pts = _batch_points(points, b)
            flow = self.estimate(img1[b], img2[b], mode, pts)
            flows.append(flow if pts is not None else flow.permute(2, 0, 1))
        return torch.stack(flows).to(img1.device)


def _batch_points(points, index: int):
    if points is None:
        return None
    pts = torch.as_tensor(points)
    return pts[index] if pts.dim() == 3 else pts


def _matching_pair(img1, img2) -> tuple[torch.Tensor, torch.Tensor]:
    first = to_image_tensor(img1, min_side=MIN_FLOW_SIDE)
    second = to_image_tensor(img2, min_side=MIN_FLOW_SIDE)
    if first.shape != second.shape:
        raise ValueError(f"img1 and img2 must have the same size, got {tuple(first.shape[1:])} "
                         f"and {tuple(second.shape[1:])} (H, W)")
    return first, second


def validate_points(points, image_size) -> torch.Tensor:
    """(N, 2) finite (x, y) inside img1 as a float32 tensor; ValueError otherwise."""
    pts = torch.as_tensor(np.asarray(points) if not isinstance(points, torch.Tensor) else points)
    if pts.dim() != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise ValueError(f"points must be a non-empty (N, 2) array of (x, y), "
                         f"got shape {tuple(pts.shape)}")
    pts = pts.float()
    if not torch.isfinite(pts).all():
        raise ValueError("points contain NaN or inf")
    height, width = image_size
    outside = (pts[:, 0] < 0) | (pts[:, 0] > width - 1) | (pts[:, 1] < 0) | (pts[:, 1] > height - 1)
    if outside.any():
        raise ValueError(f"{int(outside.sum())} point(s) lie outside img1 "
                         f"(x in [0, {width - 1}], y in [0, {height - 1}])")
    return pts


def _content_key(image: torch.Tensor) -> str:
    data = image.detach().cpu().contiguous().numpy().tobytes()
    return hashlib.sha1(data).hexdigest() + str(tuple(image.shape))


def resolve_encoder(encoder: str, order: int) -> str:
    """'auto' becomes 'pretrained' when shipped weights exist for ``order``, else 'direct'."""
    if encoder != "auto":
        return encoder
    try:
        from hashflow.autoencoder import pretrained_path
    except ImportError:
        return "direct"
    return "pretrained" if pretrained_path(order).is_file() else "direct"


def estimate(img1, img2, mode: str = "patch", points=None, order: int = 2,
             encoder: str = "auto", device=None, **options):
    """Optical flow from img1 to img2 by coordinate descent through the hash decoder.

    img1, img2: numpy (H, W, 3) uint8 / float in [0, 1] / grayscale, or torch (B, 3, H, W).
    mode: "pixel" (a displacement per point), "patch" (each point's 3x3 patch shares one) or
    "image" (one displacement). points: None (dense) or (N, 2) float (x, y) in img1.
    options: ``config="fast"`` (a preset) and/or SolverConfig fields.
    Returns: numpy (H, W, 2) / (N, 2) float32, or torch (B, 2, H, W) / (B, N, 2);
    ``img1(x) ~ img2(x + flow(x))``, channel 0 = u (right), 1 = v (down).
    """
    estimator = FlowEstimator(order=order, encoder=encoder, device=device, **options)
    return estimator.estimate(img1, img2, mode=mode, points=points)
