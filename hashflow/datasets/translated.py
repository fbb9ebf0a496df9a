"""Translated frame pairs: the paper's benchmark protocol (whole image moved within a disk).

Both frames are crops of one larger image, so neither has wrap-around or blank borders:
img1 is an integer-aligned crop, img2 the crop displaced by ``-flow``, its sub-pixel part
resampled with a separable Lanczos kernel (a = 8). That kernel is symmetric about the sample
position, so its phase is exactly linear: every frequency moves by the same sub-pixel amount.
Bilinear resampling is not: its two-tap kernel moves fine texture by up to ~0.15 px less or
more than the stated shift, which caps any method's measurable accuracy near 0.1 px (measured
by registering raw pixels). Convention: ``img1(x) ≈ img2(x + flow)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from hashflow.datasets.sources import ImageSource

LANCZOS_A = 8

# Lanczos taps reach LANCZOS_A px beyond the displaced crop (plus one for the floor).
_SAMPLING_BORDER = LANCZOS_A + 2


@dataclass(frozen=True)
class TranslationConfig:
    """Parameters of a translated pair (defaults: the paper's protocol)."""

    size: int = 256
    """Side of both square frames, px."""
    radius: float = 50.0
    """Translations are drawn uniformly from the disk of this radius, px."""
    n_points: int = 256
    """Query points per pair."""
    margin: float = 50.0
    """Points lie in [margin, size - 1 - margin] along both axes, px."""

    def __post_init__(self) -> None:
        if not isinstance(self.size, (int, np.integer)) or self.size < 8:
            raise ValueError(f"size must be an integer >= 8, got {self.size!r}")
        if not (self.radius >= 0 and math.isfinite(self.radius)):
            raise ValueError(f"radius must be a finite number >= 0, got {self.radius!r}")
        if not isinstance(self.n_points, (int, np.integer)) or self.n_points < 0:
            raise ValueError(f"n_points must be an integer >= 0, got {self.n_points!r}")
        if not 0 <= self.margin <= (self.size - 1) / 2:
            raise ValueError(f"margin must lie in [0, (size - 1) / 2], got {self.margin!r}")

    def as_dict(self) -> dict:
        """The fields as plain Python values (for metadata)."""
        return {"size": int(self.size), "radius": float(self.radius),
                "n_points": int(self.n_points), "margin": float(self.margin)}


@dataclass
class TranslatedPair:
    """Two frames related by one global translation, with query points."""

    img1: np.ndarray
    """(size, size, 3) uint8 RGB, the first frame."""
    img2: np.ndarray
    """(size, size, 3) uint8 RGB, the second frame."""
    flow: np.ndarray
    """(2,) float64 translation (u, v) in px: img1(x) ≈ img2(x + flow)."""
    points: np.ndarray
    """(N, 2) float32 query points (x, y) in img1."""
    source: str = ""
    """Name of the source image."""
    seed: int | None = None
    """Seed that regenerates this pair with make_translated_pair, or None."""

    def dense_flow(self) -> np.ndarray:
        """Returns: (size, size, 2) float32, the translation at every pixel."""
        height, width = self.img1.shape[:2]
        return np.broadcast_to(self.flow.astype(np.float32), (height, width, 2)).copy()

    def point_flow(self) -> np.ndarray:
        """Returns: (N, 2) float32, the translation at every query point."""
        return np.broadcast_to(self.flow.astype(np.float32), self.points.shape).copy()


def make_translated_pair(image: np.ndarray, size: int = 256, radius: float = 50.0,
                         n_points: int = 256, margin: float = 50.0,
                         rng: np.random.Generator | int | None = None,
                         source: str = "") -> TranslatedPair:
    """Cut a translated pair out of one image.

    Args:
        image: (H, W, 3) uint8 RGB source; reflect-padded when too small for the crop plus
            the displacement, and first upscaled when its short side is below ``size``.
        size, radius, n_points, margin: see :class:`TranslationConfig`.
        rng: a numpy Generator, an integer seed (stored in the pair) or None (fresh entropy).
        source: name recorded in the pair.
    Returns:
        a :class:`TranslatedPair` with (size, size, 3) frames, a (2,) flow and (n_points, 2)
        points.
    """
    config = TranslationConfig(size, radius, n_points, margin)
    seed = int(rng) if isinstance(rng, (int, np.integer)) else None
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return _make_pair(_checked_image(image), config, generator, source, seed)


def make_translated_set(images: Sequence[ImageSource | np.ndarray], n_pairs: int,
                        seed: int = 0, **config) -> list[TranslatedPair]:
    """``n_pairs`` translated pairs, pair i cut from ``images[i % len(images)]``.

    Args:
        images: :class:`ImageSource` items or (H, W, 3) uint8 RGB arrays.
        n_pairs: number of pairs.
        seed: master seed; pair i gets its own seed (stored in the pair), and the first k
            pairs do not depend on ``n_pairs``.
        **config: ``size``, ``radius``, ``n_points``, ``margin`` (see TranslationConfig).
    """
    if not isinstance(n_pairs, (int, np.integer)) or n_pairs < 0:
        raise ValueError(f"n_pairs must be an integer >= 0, got {n_pairs!r}")
    if n_pairs and not images:
        raise ValueError("images is empty; expected at least one source image")
    settings = TranslationConfig(**config)
    pair_seeds = np.random.SeedSequence(seed).generate_state(n_pairs) if n_pairs else []
    pairs = []
    for index, pair_seed in enumerate(pair_seeds):
        name, image = _named_image(images[index % len(images)], index % len(images))
        pairs.append(make_translated_pair(image, **settings.as_dict(), rng=int(pair_seed),
                                          source=name))
    return pairs


def sample_translation(rng: np.random.Generator, radius: float) -> np.ndarray:
    """A (2,) float64 vector uniform in the disk of ``radius`` (area-uniform: r = R sqrt(U))."""
    r = radius * math.sqrt(rng.random())
    angle = 2 * math.pi * rng.random()
    return np.array([r * math.cos(angle), r * math.sin(angle)])


def _make_pair(image: np.ndarray, config: TranslationConfig, rng: np.random.Generator,
               source: str, seed: int | None) -> TranslatedPair:
    flow = sample_translation(rng, config.radius)
    reach = math.ceil(config.radius) + _SAMPLING_BORDER
    canvas = _prepared_canvas(image, config.size, reach)
    origin = [int(rng.integers(reach, side - config.size - reach + 1))
              for side in (canvas.shape[1], canvas.shape[0])]
    img1 = canvas[origin[1]:origin[1] + config.size, origin[0]:origin[0] + config.size]
    img2 = _shifted_crop(canvas, origin, flow, config.size)
    low, high = config.margin, config.size - 1 - config.margin
    points = rng.uniform(low, high, (config.n_points, 2)).astype(np.float32)
    return TranslatedPair(_to_uint8(img1), img2, flow, points, source, seed)


def _shifted_crop(canvas: np.ndarray, origin: list[int], flow: np.ndarray,
                  size: int) -> np.ndarray:
    """img2(y) = canvas(y + origin - flow), so img2(x + flow) = canvas(x + origin) = img1(x)."""
    position = np.asarray(origin, np.float64) - flow  # (x, y) of img2's first pixel in canvas
    start = np.floor(position).astype(int)
    weights = [lanczos_weights(frac) for frac in position - start]
    taps = np.arange(1 - LANCZOS_A, LANCZOS_A + 1)
    rows = sum(w * canvas[start[1] + k:start[1] + k + size] for w, k in zip(weights[1], taps))
    shifted = sum(w * rows[:, start[0] + k:start[0] + k + size] for w, k in zip(weights[0], taps))
    return _to_uint8(shifted)


def lanczos_weights(frac: float, a: int = LANCZOS_A) -> np.ndarray:
    """Weights of taps ``1 - a .. a`` interpolating at ``frac`` in [0, 1), summing to one."""
    offsets = np.arange(1 - a, a + 1) - frac
    weights = np.sinc(offsets) * np.sinc(offsets / a)
    return weights / weights.sum()


def _prepared_canvas(image: np.ndarray, size: int, reach: int) -> np.ndarray:
    """float32 source, upscaled to a short side >= size, reflect-padded to size + 2 reach."""
    canvas = image.astype(np.float32)
    short = min(canvas.shape[:2])
    if short < size:
        scale = size / short
        new_size = (math.ceil(canvas.shape[1] * scale), math.ceil(canvas.shape[0] * scale))
        canvas = cv2.resize(canvas, new_size, interpolation=cv2.INTER_CUBIC)
    need = size + 2 * reach
    pad_y, pad_x = (max(0, need - side) for side in canvas.shape[:2])
    if pad_x or pad_y:
        canvas = cv2.copyMakeBorder(canvas, pad_y // 2, pad_y - pad_y // 2, pad_x // 2,
                                    pad_x - pad_x // 2, cv2.BORDER_REFLECT_101)
    return canvas


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _checked_image(image: np.ndarray) -> np.ndarray:
    is_rgb8 = isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
    if not is_rgb8 or image.shape[2] != 3:
        got = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"image must be a uint8 (H, W, 3) RGB array, got {got} "
                         f"{getattr(image, 'shape', '')}")
    return image


def _named_image(item: ImageSource | np.ndarray, index: int) -> tuple[str, np.ndarray]:
    if isinstance(item, ImageSource):
        return item.name, item.load()
    return f"image{index}", item
