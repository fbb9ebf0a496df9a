"""OpenCV optical-flow baselines under hashflow's conventions.

Every baseline is ``fn(img1, img2, points=None)``; dense methods return a flow
``(H, W, 2)`` float32 and ignore ``points``, point-only methods (pyramidal Lucas-Kanade) return
``(N, 2)`` float32 at ``points``. Flow maps img1 to img2: ``img1(x) ≈ img2(x + flow(x))``,
channel 0 = u (x, right), 1 = v (y, down), as OpenCV's ``calcOpticalFlow*``.

The registry ``BASELINES`` names them all; ``baseline_availability()`` tells, for this cv2 build,
which run and why the others do not (for example "needs opencv-contrib (cv2.optflow)").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

FlowFn = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Baseline:
    """One named OpenCV flow method."""

    name: str
    """Registry name, as given to the benchmark's ``--methods``."""
    kernel: FlowFn
    """``kernel(gray1, gray2, points) -> flow``: the OpenCV call on validated uint8 gray frames."""
    sparse: bool
    """True when the method only gives flow at points ``(N, 2)``; False for dense ``(H, W, 2)``."""
    requires: tuple[str, ...]
    """Dotted cv2 attributes the method needs (checked by ``baseline_availability``)."""
    description: str
    """One line for reports."""

    def __call__(self, img1, img2, points=None) -> np.ndarray:
        """Flow from img1 to img2; see ``run_baseline`` for shapes."""
        return run_baseline(self.name, img1, img2, points)


@dataclass(frozen=True)
class LKConfig:
    """Pyramidal Lucas-Kanade settings, sized for motions up to about 50 px on 256-px frames."""

    win_size: int = 31
    """Side of the square matching window in pixels (odd)."""
    max_level: int = 5
    """Number of pyramid levels above the base; 5 halvings give about 2**5 * win/2 px of reach."""
    max_iter: int = 50
    """Iterations per level."""
    eps: float = 0.01
    """Stop a level when the update is below this many pixels."""


# ---------------------------------------------------------------------------------------------
# Input validation


def _to_numpy(image) -> np.ndarray:
    """A numpy view of ``image``; torch tensors ``(3, H, W)`` become ``(H, W, 3)``."""
    if hasattr(image, "detach"):
        array = image.detach().cpu().numpy()
        return np.moveaxis(array, 0, -1) if array.ndim == 3 and array.shape[0] == 3 else array
    return np.asarray(image)


def to_gray_uint8(image, name: str = "image") -> np.ndarray:
    """Frame as OpenCV wants it for flow.

    Args:
        image: (H, W, 3) RGB or (H, W) grayscale, uint8 in [0, 255] or float in [0, 1];
            a torch (3, H, W) tensor is accepted too.
    Returns:
        (H, W) uint8, contiguous.
    """
    array = _to_numpy(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"{name}: expected an (H, W, 3) RGB or (H, W) grayscale image, "
                         f"got shape {array.shape}")
    if min(array.shape[:2]) < 8:
        raise ValueError(f"{name}: expected an image at least 8x8 pixels, got {array.shape[:2]}")
    array = _as_uint8(array, name)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(array)


def _as_uint8(array: np.ndarray, name: str) -> np.ndarray:
    """uint8 as is; floats in [0, 1] scaled by 255; other dtypes rejected."""
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name}: expected uint8 in [0, 255] or float in [0, 1], "
                         f"got dtype {array.dtype}")
    if not np.all(np.isfinite(array)) or array.min() < -1e-3 or array.max() > 1 + 1e-3:
        raise ValueError(f"{name}: float images must be finite and in [0, 1]")
    return np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)


def check_points(points) -> np.ndarray:
    """Points ``(N, 2)`` float32 (x, y); ValueError when not (N, 2) finite."""
    array = np.asarray(points, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != 2 or len(array) == 0:
        raise ValueError(f"points: expected a non-empty (N, 2) array of (x, y), "
                         f"got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("points: expected finite coordinates")
    return array


def prepare_pair(img1, img2) -> tuple[np.ndarray, np.ndarray]:
    """Both frames as (H, W) uint8 gray; ValueError when their sizes differ."""
    gray1, gray2 = to_gray_uint8(img1, "img1"), to_gray_uint8(img2, "img2")
    if gray1.shape != gray2.shape:
        raise ValueError(f"img1 and img2 must have the same size, got {gray1.shape} "
                         f"and {gray2.shape}")
    return gray1, gray2


# ---------------------------------------------------------------------------------------------
# The OpenCV calls (inputs already validated: uint8 gray, same size)


def _farneback(gray1, gray2, points=None):
    # pyr_scale 0.5, 5 levels (reach ~ 2**5 * winsize), winsize 15, 3 iterations, poly_n 5
    return cv2.calcOpticalFlowFarneback(gray1, gray2, None, 0.5, 5, 15, 3, 5, 1.2, 0)


def _dis(preset: int) -> FlowFn:
    def run(gray1, gray2, points=None):
        return cv2.DISOpticalFlow_create(preset).calc(gray1, gray2, None)
    return run


def _tvl1(gray1, gray2, points=None):
    return cv2.optflow.DualTVL1OpticalFlow_create().calc(gray1, gray2, None)


def _deepflow(gray1, gray2, points=None):
    return cv2.optflow.createOptFlow_DeepFlow().calc(gray1, gray2, None)


def _pcaflow(gray1, gray2, points=None):
    return cv2.optflow.createOptFlow_PCAFlow().calc(gray1, gray2, None)


def phase_correlation_shift(gray1: np.ndarray, gray2: np.ndarray) -> tuple[float, float]:
    """Global translation (u, v) with img1(x) ≈ img2(x + (u, v)), Hanning-windowed.

    ``cv2.phaseCorrelate(a, b)`` returns the shift of b relative to a, which is exactly our
    flow from img1 to img2 (checked in tests/test_baselines.py).
    """
    height, width = gray1.shape
    window = cv2.createHanningWindow((width, height), cv2.CV_32F)
    (u, v), _ = cv2.phaseCorrelate(np.float32(gray1), np.float32(gray2), window)
    return float(u), float(v)


def _phasecorr(gray1, gray2, points=None):
    flow = np.empty(gray1.shape + (2,), np.float32)
    flow[...] = phase_correlation_shift(gray1, gray2)
    return flow


def pyramidal_lk(gray1, gray2, points, config: LKConfig = LKConfig()) -> np.ndarray:
    """Lucas-Kanade at ``points`` (N, 2) (x, y). Returns (N, 2) float32 flow.

    Points LK loses (status 0) get zero flow: the method gave no estimate there.
    """
    if points is None:
        raise ValueError("pyrlk is a point-only method: pass points (N, 2) of (x, y)")
    start = check_points(points).reshape(-1, 1, 2)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, config.max_iter, config.eps)
    end, status, _ = cv2.calcOpticalFlowPyrLK(
        gray1, gray2, start, None, winSize=(config.win_size, config.win_size),
        maxLevel=config.max_level, criteria=criteria)
    flow = (end - start).reshape(-1, 2).astype(np.float32)
    flow[status.reshape(-1) == 0] = 0.0
    return flow


# ---------------------------------------------------------------------------------------------
# Registry


def _entry(name, fn, description, sparse=False, requires=()):
    return name, Baseline(name, fn, sparse, tuple(requires), description)


_CONTRIB = "optflow"
BASELINES: dict[str, Baseline] = dict([
    _entry("farneback", _farneback, "Farneback polynomial expansion, 5-level pyramid",
           requires=["calcOpticalFlowFarneback"]),
    _entry("dis-ultrafast", _dis(cv2.DISOpticalFlow_PRESET_ULTRAFAST), "DIS, ULTRAFAST preset",
           requires=["DISOpticalFlow_create"]),
    _entry("dis-fast", _dis(cv2.DISOpticalFlow_PRESET_FAST), "DIS, FAST preset",
           requires=["DISOpticalFlow_create"]),
    _entry("dis-medium", _dis(cv2.DISOpticalFlow_PRESET_MEDIUM), "DIS, MEDIUM preset",
           requires=["DISOpticalFlow_create"]),
    _entry("tvl1", _tvl1, "Dual TV-L1 (opencv-contrib)",
           requires=[f"{_CONTRIB}.DualTVL1OpticalFlow_create"]),
    _entry("deepflow", _deepflow, "DeepFlow (opencv-contrib)",
           requires=[f"{_CONTRIB}.createOptFlow_DeepFlow"]),
    _entry("pcaflow", _pcaflow, "PCAFlow (opencv-contrib)",
           requires=[f"{_CONTRIB}.createOptFlow_PCAFlow"]),
    _entry("phasecorr", _phasecorr, "phase correlation, Hanning window, one global shift",
           requires=["phaseCorrelate", "createHanningWindow"]),
    _entry("pyrlk", pyramidal_lk, "pyramidal Lucas-Kanade at the points, 31x31, 5 levels",
           sparse=True, requires=["calcOpticalFlowPyrLK"]),
])


def _has_cv2_attr(dotted: str) -> bool:
    target = cv2
    for part in dotted.split("."):
        target = getattr(target, part, None)
        if target is None:
            return False
    return True


def unavailable_reason(name: str) -> str | None:
    """Why baseline ``name`` cannot run in this cv2 build, or None when it can."""
    if name not in BASELINES:
        return f"unknown baseline {name!r}; known: {', '.join(BASELINES)}"
    missing = [attr for attr in BASELINES[name].requires if not _has_cv2_attr(attr)]
    if not missing:
        return None
    if any(attr.startswith(f"{_CONTRIB}.") for attr in missing):
        return f"needs opencv-contrib (cv2.{missing[0]} missing in cv2 {cv2.__version__})"
    return f"cv2 {cv2.__version__} lacks cv2.{missing[0]}"


def baseline_availability() -> dict[str, str | None]:
    """Every registered baseline -> None when it runs here, else the reason it does not."""
    return {name: unavailable_reason(name) for name in BASELINES}


def available_baselines() -> list[str]:
    """Names of the baselines this cv2 build can run, in registry order."""
    return [name for name, reason in baseline_availability().items() if reason is None]


def run_baseline(name: str, img1, img2, points=None) -> np.ndarray:
    """Run baseline ``name`` on a frame pair.

    Args:
        img1, img2: (H, W, 3) uint8 RGB (or float in [0, 1]) or (H, W) grayscale, same size.
        points: (N, 2) float (x, y); required by point-only methods, ignored by dense ones.
    Returns:
        dense methods: flow (H, W, 2) float32, (u, v) in pixels;
        point-only methods: flow (N, 2) float32 at ``points``.
    """
    reason = unavailable_reason(name)
    if reason is not None:
        raise ValueError(f"baseline {name!r} is unavailable: {reason}")
    gray1, gray2 = prepare_pair(img1, img2)
    if points is not None:
        points = check_points(points)
    return np.asarray(BASELINES[name].kernel(gray1, gray2, points), dtype=np.float32)
