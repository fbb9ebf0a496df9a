"""Matplotlib figures for flow fields, flow errors and hash encodings (Agg, no pyplot state).

Every function builds a :class:`matplotlib.figure.Figure`, writes it as a PNG atomically when
``path`` is given (:func:`save_figure`) and returns it. Figures are not registered with pyplot,
so they are freed with their last reference; nothing needs a display.

Conventions: images are (H, W, 3) uint8 RGB or float in [0, 1] (anything
``hashflow.images.to_image_tensor`` accepts); flows are numpy (H, W, 2) float, (u, v) in pixels,
``img1(x) ≈ img2(x + flow(x))``.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hashflow.atomic import atomic_path
from hashflow.encoding import HashEncoding, decode
from hashflow.flow_io import check_flow
from hashflow.flow_viz import color_wheel_legend, flow_to_color
from hashflow.grid import vertex_grid
from hashflow.images import psnr, to_image_tensor, to_uint8
from hashflow.metrics import epe
from hashflow.warp import warp, warp_valid_mask

PANEL_INCHES = 3.0
DEFAULT_DPI = 100
ARROWS_PER_SIDE = 20
"""Default quiver density: about this many arrows along the longer image side."""


def new_figure(columns: int = 1, rows: int = 1, panel_inches: float = PANEL_INCHES) -> Figure:
    """An Agg-backed figure sized for ``rows x columns`` square panels (no pyplot)."""
    figure = Figure(figsize=(panel_inches * columns, panel_inches * rows + 0.4),
                    layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int = DEFAULT_DPI) -> None:
    """Write ``figure`` as a PNG at ``path`` atomically (a reader never sees half a file)."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)


def _finish(figure: Figure, path, dpi: int) -> Figure:
    if path is not None:
        save_figure(figure, path, dpi)
    return figure


def as_rgb(image) -> np.ndarray:
    """Any accepted image form -> (H, W, 3) uint8 RGB (ValueError otherwise)."""
    return to_uint8(to_image_tensor(image, min_side=1))


def _check_same_size(image: np.ndarray, flow: np.ndarray) -> None:
    if image.shape[:2] != flow.shape[:2]:
        raise ValueError(f"image is {image.shape[:2]} (H, W) but flow is {flow.shape[:2]}")


def _image_axes(figure: Figure, position, image: np.ndarray, title: str, **imshow):
    axes = figure.add_subplot(*position)
    handle = axes.imshow(image, interpolation="nearest", **imshow)
    axes.set_title(title, fontsize=9)
    axes.set_axis_off()
    return axes, handle


def largest_magnitude(flow: np.ndarray) -> float:
    """Largest finite |flow| (px) of an (H, W, 2) field; 1.0 for an all-zero field."""
    magnitude = np.hypot(flow[..., 0], flow[..., 1])
    finite = magnitude[np.isfinite(magnitude)]
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def flow_figure(flow, path=None, max_radius: float | None = None, valid=None,
                title: str | None = None, legend: bool = True, dpi: int = DEFAULT_DPI) -> Figure:
    """The flow colour-coded on the Middlebury wheel, with the wheel as an inset legend.

    Args:
        flow: (H, W, 2) float, (u, v) px. max_radius: magnitude (px) at full saturation (share
            it between figures to compare them); None: the largest magnitude.
        valid: (H, W) bool or None. title: None gives "flow (max radius R px)".
        legend: draw the wheel inset (its rim is ``max_radius``).
    Returns: the figure (also written to ``path`` as a PNG when given).
    """
    flow = check_flow(flow)
    radius = float(max_radius) if max_radius is not None else largest_magnitude(flow)
    figure = new_figure()
    axes, _ = _image_axes(figure, (1, 1, 1), flow_to_color(flow, radius, valid),
                          title or f"flow (wheel rim = {radius:.3g} px)")
    if legend:
        inset = axes.inset_axes([0.74, 0.74, 0.25, 0.25])
        inset.imshow(color_wheel_legend(101))
        inset.set_axis_off()
    return _finish(figure, path, dpi)


def quiver_figure(image, flow, path=None, stride: int | None = None, title: str = "flow",
                  color: str = "yellow", dpi: int = DEFAULT_DPI) -> Figure:
    """Arrows of the flow, drawn at a stride over the image (arrow length = displacement).

    Args:
        image: img1, (H, W, 3). flow: (H, W, 2) float, (u, v) px.
        stride: pixels between arrows; None gives about ``ARROWS_PER_SIDE`` per long side.
    """
    if stride is not None and (not isinstance(stride, (int, np.integer)) or stride < 1):
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    rgb, flow = as_rgb(image), check_flow(flow)
    _check_same_size(rgb, flow)
    step = stride or max(1, max(flow.shape[:2]) // ARROWS_PER_SIDE)
    ys, xs = np.mgrid[step // 2:flow.shape[0]:step, step // 2:flow.shape[1]:step]
    figure = new_figure()
    axes, _ = _image_axes(figure, (1, 1, 1), rgb, f"{title} (every {step} px)")
    sampled = flow[ys, xs]
    # y points down in image axes, so pixel displacements are drawn as they are (scale 1).
    axes.quiver(xs, ys, sampled[..., 0], sampled[..., 1], color=color, angles="xy",
                scale_units="xy", scale=1, width=0.004)
    return _finish(figure, path, dpi)


def warp_figure(img1, img2, flow, path=None, dpi: int = DEFAULT_DPI) -> Figure:
    """img1, img2 warped into img1's frame by the flow, and their absolute difference.

    The difference is black where the flow explains the motion; pixels whose target leaves
    img2 are masked. The titles give the PSNR of the warp against img1 over valid pixels.
    """
    rgb1, rgb2, flow = as_rgb(img1), as_rgb(img2), check_flow(flow)
    _check_same_size(rgb1, flow)
    _check_same_size(rgb2, flow)
    warped = warp(rgb2, flow)
    valid = warp_valid_mask(flow)
    difference = np.abs(rgb1.astype(np.float32) - warped.astype(np.float32)).mean(axis=2) / 255
    quality = _masked_psnr(rgb1, warped, valid)
    figure = new_figure(columns=3)
    _image_axes(figure, (1, 3, 1), rgb1, "img1")
    _image_axes(figure, (1, 3, 2), warped, f"img2 warped ({quality:.1f} dB)")
    _, handle = _image_axes(figure, (1, 3, 3), np.where(valid, difference, np.nan),
                            "|img1 - warped|", cmap="magma", vmin=0, vmax=0.5)
    figure.colorbar(handle, ax=figure.axes[-1], shrink=0.8)
    return _finish(figure, path, dpi)


def _masked_psnr(reference: np.ndarray, image: np.ndarray, valid: np.ndarray) -> float:
    if not valid.any():
        return float("nan")
    a = torch.from_numpy(reference[valid].astype(np.float32) / 255)
    b = torch.from_numpy(image[valid].astype(np.float32) / 255)
    return psnr(a, b)


def error_figure(pred, gt, path=None, valid=None, vmax: float | None = None,
                 title: str = "end-point error", dpi: int = DEFAULT_DPI) -> Figure:
    """EPE heat map ``|pred - gt|`` (px) with a colour bar; the title gives the mean EPE.

    Args:
        pred, gt: (H, W, 2) float. valid: (H, W) bool or None (where gt is finite).
        vmax: colour-bar top in px (share it between figures); None: the 99th percentile.
    """
    pred, gt = check_flow(pred, "pred"), check_flow(gt, "gt")
    errors = epe(np.nan_to_num(pred), np.nan_to_num(gt))
    mask = np.isfinite(gt).all(axis=2) if valid is None else np.asarray(valid, dtype=bool)
    if mask.shape != errors.shape:
        raise ValueError(f"valid must have shape {errors.shape}, got {mask.shape}")
    shown = np.where(mask, errors, np.nan)
    top = vmax if vmax is not None else max(float(np.nanpercentile(shown, 99)), 1e-3)
    figure = new_figure()
    _, handle = _image_axes(figure, (1, 1, 1), shown, f"{title}: mean {np.nanmean(shown):.3g} px",
                            cmap="inferno", vmin=0, vmax=top)
    figure.colorbar(handle, ax=figure.axes[0], shrink=0.8, label="EPE (px)")
    return _finish(figure, path, dpi)


def level_feature_maps(encoding: HashEncoding, feature: int = 0) -> list[np.ndarray]:
    """Per-level vertex grids of one feature channel: a list of (N_l + 1, N_l + 1) float32.

    A hashed level reads its table through the hash, so its map repeats table entries at
    unrelated vertices: the "space folding" the paper shows in its Figures 3 and 7.
    """
    if not 0 <= feature < encoding.config.features:
        raise ValueError(f"feature must lie in [0, {encoding.config.features - 1}], got {feature}")
    tables = encoding.tables.detach()[None].float()
    return [vertex_grid(tables, encoding.config, level)[0, feature].cpu().numpy()
            for level in range(encoding.config.levels)]


def encoding_figure(encoding: HashEncoding, image=None, path=None, feature: int = 0,
                    columns: int = 5, dpi: int = DEFAULT_DPI) -> Figure:
    """Original / decoded image, then one heat map per level of feature ``feature``.

    Args:
        encoding: a HashEncoding. image: the encoded image (H, W, 3) or None (no original
            panel, no PSNR). columns: panels per row.
    Each level panel is titled with its resolution N_l and "dense" or "hashed"; each map uses
    its own symmetric colour range (RdBu), since levels differ in scale.
    """
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    decoded = decode(encoding)
    panels = _image_panels(decoded, image, encoding.image_size)
    maps = level_feature_maps(encoding, feature)
    count = len(panels) + len(maps)
    rows = -(-count // columns)
    figure = new_figure(columns=columns, rows=rows, panel_inches=2.2)
    for index, (title, picture) in enumerate(panels, start=1):
        _image_axes(figure, (rows, columns, index), picture, title)
    resolutions = encoding.config.resolutions()
    for level, grid in enumerate(maps):
        kind = "dense" if encoding.config.is_dense(level) else "hashed"
        limit = float(np.abs(grid).max()) or 1.0
        _image_axes(figure, (rows, columns, len(panels) + level + 1), grid,
                    f"level {level}: N={resolutions[level]} {kind}", cmap="RdBu_r",
                    vmin=-limit, vmax=limit)
    figure.suptitle(f"hash encoding: {encoding.config.levels} levels x "
                    f"{encoding.config.features} features, T={encoding.config.table_size}, "
                    f"order {encoding.config.order}; feature {feature} per level", fontsize=10)
    return _finish(figure, path, dpi)


def _image_panels(decoded: np.ndarray, image, size) -> list[tuple[str, np.ndarray]]:
    if image is None:
        return [("decoded", decoded)]
    original = as_rgb(image)
    if original.shape[:2] != tuple(size):
        raise ValueError(f"image is {original.shape[:2]} (H, W), the encoding is for {tuple(size)}")
    quality = psnr(torch.from_numpy(original / 255.0), torch.from_numpy(decoded.astype(np.float64)))
    return [("original", original), (f"decoded ({quality:.1f} dB)", decoded)]


def image_figure(images: dict[str, np.ndarray], path=None, dpi: int = DEFAULT_DPI) -> Figure:
    """Images side by side, titled by their keys (e.g. {"img1": ..., "img2": ...})."""
    if not images:
        raise ValueError("images must hold at least one image")
    figure = new_figure(columns=len(images))
    for index, (title, image) in enumerate(images.items(), start=1):
        _image_axes(figure, (1, len(images), index), as_rgb(image), title)
    return _finish(figure, path, dpi)
