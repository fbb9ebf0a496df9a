"""Image inputs: one validated conversion from every accepted form to a float tensor."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

MIN_SIDE = 8
EXPECTED = ("uint8 (H, W, 3) RGB, float (H, W, 3) in [0, 1], grayscale (H, W), "
            "or a torch tensor (3, H, W)")


def _check_size(height: int, width: int, min_side: int) -> None:
    if height < min_side or width < min_side:
        raise ValueError(f"image is {height}x{width}; hashflow needs at least "
                         f"{min_side}x{min_side} pixels")


def _numpy_to_chw(image: np.ndarray) -> torch.Tensor:
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(f"image has shape {image.shape}; expected {EXPECTED}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if image.dtype == np.uint8:
        array = image.astype(np.float32) / 255.0
    elif np.issubdtype(image.dtype, np.floating):
        array = image.astype(np.float32)
    else:
        raise ValueError(f"image has dtype {image.dtype}; expected {EXPECTED}")
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)


def _torch_to_chw(image: torch.Tensor) -> torch.Tensor:
    if image.dim() == 2:
        image = image.unsqueeze(0)
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image tensor has shape {tuple(image.shape)}; expected {EXPECTED}")
    if image.dtype == torch.uint8:
        image = image.float() / 255.0
    elif not image.is_floating_point():
        raise ValueError(f"image tensor has dtype {image.dtype}; expected {EXPECTED}")
    return image.float().expand(3, -1, -1) if image.shape[0] == 1 else image.float()


def to_image_tensor(image, min_side: int = MIN_SIDE) -> torch.Tensor:
    """Validate an image and return it as (3, H, W) float32 in [0, 1].

    Accepts uint8 (H, W, 3) RGB, float (H, W, 3) in [0, 1], grayscale (H, W) (replicated),
    or a torch (3, H, W) tensor (kept on its device). Raises ValueError for anything else,
    NaN/inf values, float values outside [0, 1] or images smaller than ``min_side``.
    """
    if isinstance(image, torch.Tensor):
        chw = _torch_to_chw(image)
    elif isinstance(image, np.ndarray):
        chw = _numpy_to_chw(image)
    else:
        raise ValueError(f"image is a {type(image).__name__}; expected {EXPECTED}")
    _check_size(chw.shape[1], chw.shape[2], min_side)
    if not torch.isfinite(chw).all():
        raise ValueError("image contains NaN or inf values")
    if chw.min() < -1e-3 or chw.max() > 1 + 1e-3:
        raise ValueError("float image values must lie in [0, 1] (uint8 images may use 0..255)")
    return chw.clamp(0, 1)


def load_image(path) -> np.ndarray:
    """Read an image file as uint8 (H, W, 3) RGB; a clear error when it can't be read."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such image file: {path}")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read {path} as an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> uint8 (H, W, 3)."""
    array = image.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return np.round(array * 255).astype(np.uint8)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB between two images in [0, 1]."""
    mse = torch.mean((a.float() - b.float()) ** 2).item()
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)
