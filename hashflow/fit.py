"""Per-image encoding: optimise hash tables (and optionally the decoder) to one image."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from hashflow.decoder import Decoder
from hashflow.encoding import HashEncoding
from hashflow.grid import HashGridConfig, init_tables, sample_grid
from hashflow.images import to_image_tensor


def default_device(device=None) -> torch.device:
    """``device`` when given, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sample_kept_levels(num_levels: int, dropout: float, generator: torch.Generator,
                       min_levels: int = 2) -> int | None:
    """Level dropout: with probability ``dropout`` keep only a random k in [min_levels, L].

    Returns k, or None to keep every level. Training with it makes decodes that use only the
    coarsest k levels meaningful (blurred) images, which coarse-to-fine flow relies on.
    """
    if dropout <= 0 or torch.rand((), generator=generator).item() >= dropout:
        return None
    return int(torch.randint(min_levels, num_levels + 1, (), generator=generator).item())


def reconstruction_loss(tables: torch.Tensor, decoder: Decoder, target: torch.Tensor,
                        config: HashGridConfig, levels: int | None,
                        offset: torch.Tensor | None = None) -> torch.Tensor:
    """MSE between the full-frame decode of tables (B, L, T, F), shifted by ``offset``, and
    target (B, 3, H, W)."""
    features = sample_grid(tables, config, tuple(target.shape[-2:]), offset, levels=levels)
    return torch.mean((decoder.forward_maps(features) - target) ** 2)


def subpixel_targets(image: torch.Tensor, subpixel: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The image resampled on the pixel grid shifted by every (k / s, m / s), k, m < s.

    image: (3, H, W). Returns offsets (s*s, 2) (dx, dy) and targets (s*s, 3, H, W), resampled
    with Lanczos-4 (linear phase). Fitting these teaches the encoding the image *between* pixel
    centres too; fitted on the pixels alone, the decoder may put anything there, which biases
    sub-pixel flow by about 0.1-0.2 px.
    """
    array = image.permute(1, 2, 0).cpu().numpy()
    height, width = array.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    offsets, targets = [], []
    for dy in range(subpixel):
        for dx in range(subpixel):
            ox, oy = dx / subpixel, dy / subpixel
            shifted = cv2.remap(array, xs + ox, ys + oy, cv2.INTER_LANCZOS4,
                                borderMode=cv2.BORDER_REFLECT)
            offsets.append((ox, oy))
            targets.append(torch.from_numpy(np.clip(shifted, 0, 1)).permute(2, 0, 1))
    return torch.tensor(offsets, dtype=torch.float32), torch.stack(targets)


def fit_image(image, steps: int = 300, order: int = 2, decoder: Decoder | None = None,
              device=None, seed: int = 0, lr: float = 2e-2, level_dropout: float = 0.3,
              config: HashGridConfig | None = None, tables: torch.Tensor | None = None,
              subpixel: int = 2, progress: bool = False) -> HashEncoding:
    """Encode one image by direct optimisation (the paper's per-image upper bound).

    image: uint8 (H, W, 3), float (H, W, 3) in [0, 1], grayscale (H, W) or torch (3, H, W).
    decoder: None fits a fresh decoder together with the tables; a given decoder is frozen and
    only the tables are optimised. level_dropout: probability of a step that keeps only the
    coarsest k levels (see :func:`sample_kept_levels`). tables: optional (L, T, F) start
    (e.g. an encoder prediction). subpixel: s > 1 also fits the image resampled at the
    s x s sub-pixel offsets (see :func:`subpixel_targets`), one drawn per step.
    Returns: HashEncoding on ``device``.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    device = default_device(device)
    image = to_image_tensor(image)
    offsets, targets = subpixel_targets(image, max(subpixel, 1))
    offsets, targets = offsets.to(device), targets.to(device)
    config = (config or HashGridConfig(order=order)).for_image(*image.shape[-2:])
    generator = torch.Generator().manual_seed(seed)
    start = tables[None] if tables is not None else init_tables(config, 1, generator=generator)
    params = torch.nn.Parameter(start.detach().clone().to(device))
    decoder, trainable = _prepare_decoder(decoder, config, generator, device)
    optimiser = torch.optim.Adam([params, *trainable], lr=lr, betas=(0.9, 0.99), eps=1e-15)
    for _ in tqdm(range(steps), desc="fit_image", disable=not progress, leave=False):
        levels = sample_kept_levels(config.levels, level_dropout, generator)
        pick = int(torch.randint(len(offsets), (), generator=generator))
        loss = reconstruction_loss(params, decoder, targets[pick:pick + 1], config, levels,
                                   offsets[pick])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    size = (image.shape[-2], image.shape[-1])
    return HashEncoding(params.detach()[0], config, size, decoder.requires_grad_(False))


def _prepare_decoder(decoder: Decoder | None, config: HashGridConfig,
                     generator: torch.Generator, device) -> tuple[Decoder, list]:
    """A fresh trainable decoder, or the given one frozen. Returns (decoder, trainable params)."""
    if decoder is not None:
        if decoder.in_features != config.feature_dim:
            raise ValueError(f"decoder takes {decoder.in_features} features, the grid gives "
                             f"{config.feature_dim}")
        return decoder.to(device).requires_grad_(False), []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31, (), generator=generator)))
        fresh = Decoder(config.feature_dim).to(device)
    return fresh, list(fresh.parameters())
