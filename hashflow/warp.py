"""Backward warping: bring img2 into img1's frame with a flow, ``out(x) = img2(x + flow(x))``.

Bilinear sampling at real-valued positions with pixel (row i, col j) centred at (x, y) = (j, i);
samples outside the image are zero and flagged invalid by :func:`warp_valid_mask`. One
implementation serves both array kinds: numpy inputs go through the same
``torch.nn.functional.grid_sample(align_corners=True)`` call as torch inputs (exact float
weights, unlike OpenCV's 1/32-px fixed-point remap).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_NUMPY_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)


def warp(image: np.ndarray | torch.Tensor, flow: np.ndarray | torch.Tensor):
    """Sample ``image`` (img2) at ``x + flow(x)``, giving an image aligned with img1.

    Args:
        image: numpy (H, W) or (H, W, C) of uint8, uint16, float32 or float64; or torch
            (B, C, H, W) float.
        flow: numpy (H, W, 2) or torch (B, 2, H, W), (u, v) in pixels, matching the image kind.
    Returns:
        the warped image with the input's type, shape and dtype (integer images rounded);
        samples outside img2 are 0. Differentiable w.r.t. image and flow on the torch path.
    """
    if isinstance(image, torch.Tensor):
        _check_torch(image, flow)
        return _warp_torch(image, flow)
    if isinstance(image, np.ndarray):
        return _warp_numpy(image, flow)
    raise ValueError(f"image must be a numpy array or a torch tensor, got {type(image).__name__}")


def warp_valid_mask(flow: np.ndarray | torch.Tensor):
    """Where ``x + flow(x)`` lands inside img2 (pixel centres from 0 to W-1 and 0 to H-1).

    Args:
        flow: numpy (H, W, 2) or torch (B, 2, H, W), (u, v) in pixels.
    Returns:
        numpy (H, W) bool or torch (B, H, W) bool.
    """
    if isinstance(flow, np.ndarray):
        _check_numpy_flow(flow, flow.shape[:2])
        flow_t = torch.from_numpy(flow.astype(np.float64)).permute(2, 0, 1)[None]
        return warp_valid_mask(flow_t)[0].numpy()
    if not isinstance(flow, torch.Tensor) or flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError("flow must be numpy (H, W, 2) or torch (B, 2, H, W), "
                         f"got {_describe(flow)}")
    x, y = _sample_positions(flow)
    height, width = flow.shape[-2:]
    return (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)


def _sample_positions(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Absolute sample positions x + u, y + v, each (B, H, W)."""
    height, width = flow.shape[-2:]
    rows = torch.arange(height, dtype=flow.dtype, device=flow.device)
    cols = torch.arange(width, dtype=flow.dtype, device=flow.device)
    grid_y, grid_x = torch.meshgrid(rows, cols, indexing="ij")
    return grid_x + flow[:, 0], grid_y + flow[:, 1]


def _warp_torch(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    height, width = image.shape[-2:]
    x, y = _sample_positions(flow.to(image.dtype))
    # align_corners=True maps -1 and +1 to the centres of the first and last pixels.
    grid = torch.stack([2 * x / max(width - 1, 1) - 1, 2 * y / max(height - 1, 1) - 1], dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def _warp_numpy(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    if image.ndim not in (2, 3) or image.dtype.type not in _NUMPY_DTYPES:
        raise ValueError(f"numpy image must be (H, W) or (H, W, C) of uint8, uint16, float32 or "
                         f"float64, got {image.dtype} {image.shape}")
    _check_numpy_flow(flow, image.shape[:2])
    work_dtype = np.float64 if image.dtype == np.float64 else np.float32
    channels = image.reshape(*image.shape[:2], -1).astype(work_dtype)
    image_t = torch.from_numpy(channels).permute(2, 0, 1)[None]
    flow_t = torch.from_numpy(flow.astype(work_dtype)).permute(2, 0, 1)[None]
    warped = _warp_torch(image_t, flow_t)[0].permute(1, 2, 0).numpy().reshape(image.shape)
    if np.issubdtype(image.dtype, np.integer):
        limits = np.iinfo(image.dtype)
        warped = np.clip(np.round(warped), limits.min, limits.max)
    return warped.astype(image.dtype)


def _check_torch(image: torch.Tensor, flow) -> None:
    if image.ndim != 4 or not image.is_floating_point():
        raise ValueError(f"torch image must be float (B, C, H, W), got {_describe(image)}")
    batch, _, height, width = image.shape
    if not isinstance(flow, torch.Tensor) or tuple(flow.shape) != (batch, 2, height, width):
        raise ValueError(f"torch flow must have shape ({batch}, 2, {height}, {width}), "
                         f"got {_describe(flow)}")


def _check_numpy_flow(flow, size: tuple[int, int]) -> None:
    if not isinstance(flow, np.ndarray) or flow.shape != (*size, 2):
        raise ValueError(f"flow must be a numpy array of shape ({size[0]}, {size[1]}, 2), "
                         f"got {_describe(flow)}")
    if not np.issubdtype(flow.dtype, np.floating):
        raise ValueError(f"flow must be floating point, got {flow.dtype}")


def _describe(value) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__} {tuple(shape)}" if shape is not None else type(value).__name__
