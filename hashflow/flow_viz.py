"""Flow visualisation with the Middlebury colour wheel (the ``flow_vis`` package).

Hue gives the direction, saturation the magnitude relative to a maximum radius; flow beyond
that radius is shown saturated and darkened (``flow_vis`` convention), invalid pixels black.
"""

from __future__ import annotations

import flow_vis
import numpy as np

from hashflow.flow_io import check_flow, check_valid


def flow_to_color(flow: np.ndarray, max_radius: float | None = None,
                  valid: np.ndarray | None = None) -> np.ndarray:
    """Colour-code a flow field.

    Args:
        flow: (H, W, 2) float, (u, v) in pixels.
        max_radius: flow magnitude (px) shown at full saturation; pass the same value for
            several frames so that their colours compare. None: the largest valid magnitude.
        valid: (H, W) bool or None (valid wherever flow is finite).
    Returns:
        (H, W, 3) uint8 RGB; invalid pixels are black.
    """
    flow = check_flow(flow).astype(np.float64)
    valid = check_valid(valid, flow)
    flow = np.where(valid[..., None], flow, 0.0)
    scale = _color_scale(flow, max_radius)
    image = flow_vis.flow_uv_to_colors(flow[..., 0] / scale, flow[..., 1] / scale)
    image[~valid] = 0
    return image


def color_wheel_legend(size: int = 151) -> np.ndarray:
    """The colour wheel as a legend: the colour of flow (u, v) at offset (u, v) from the centre.

    Args:
        size: side in pixels (at least 3).
    Returns:
        (size, size, 3) uint8 RGB, the unit disk coloured, black outside it.
    """
    if not isinstance(size, (int, np.integer)) or size < 3:
        raise ValueError(f"size must be an integer >= 3, got {size!r}")
    radius = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) - radius
    flow = np.dstack([x, y])
    inside = np.hypot(x, y) <= radius
    return flow_to_color(flow, max_radius=radius, valid=inside)


def _color_scale(flow: np.ndarray, max_radius: float | None) -> float:
    if max_radius is not None:
        if not np.isfinite(max_radius) or max_radius <= 0:
            raise ValueError(f"max_radius must be a positive number, got {max_radius!r}")
        return float(max_radius)
    largest = float(np.hypot(flow[..., 0], flow[..., 1]).max())
    return largest if largest > 0 else 1.0
