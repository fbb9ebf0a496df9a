"""Read and write optical flow files: Middlebury ``.flo``, KITTI 16-bit ``.png`` and ``.npy``.

Every reader returns ``(flow, valid)``: flow ``(H, W, 2)`` float32 with channel 0 = u (x, right)
and 1 = v (y, down), and valid ``(H, W)`` bool. Unknown pixels read as flow 0 and valid False.
The format is chosen by the file extension.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from hashflow.atomic import atomic_path

FLO_MAGIC = 202021.25
FLO_UNKNOWN_THRESHOLD = 1e9
FLO_UNKNOWN_VALUE = 1e10
KITTI_SCALE = 64.0
KITTI_OFFSET = 2.0**15
_FLO_HEADER_BYTES = 12
_FLO_MAX_SIDE = 1 << 16
_SUFFIXES = (".flo", ".png", ".npy")


def read_flow(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a flow file chosen by extension (``.flo``, ``.png`` KITTI, ``.npy``).

    Returns:
        flow (H, W, 2) float32, (u, v) in pixels, 0 where unknown;
        valid (H, W) bool, False where the file marks the flow unknown.
    Raises:
        FileNotFoundError when ``path`` does not exist; ValueError for an unknown extension
        or a corrupt, truncated or foreign file (the message names the path).
    """
    path = Path(path)
    suffix = _checked_suffix(path)
    if not path.is_file():
        raise FileNotFoundError(f"flow file not found: {path}")
    readers = {".flo": _read_flo, ".png": _read_kitti_png, ".npy": _read_npy}
    flow, valid = readers[suffix](path)
    flow[~valid] = 0.0
    return flow, valid


def write_flow(path: str | os.PathLike, flow: np.ndarray, valid: np.ndarray | None = None) -> None:
    """Write ``flow`` atomically in the format chosen by the extension of ``path``.

    Args:
        flow: (H, W, 2) float or integer array, (u, v) in pixels.
        valid: (H, W) bool or None; None means valid wherever flow is finite. Pixels that are
            invalid or non-finite are stored as unknown (``.flo``: 1e10, ``.png``: valid
            channel 0, ``.npy``: NaN).
    Raises:
        ValueError for an unknown extension, a bad flow or mask, or (``.png``) a valid value
        outside the KITTI range of about +-512 px.
    """
    path = Path(path)
    suffix = _checked_suffix(path)
    flow = check_flow(flow)
    valid = check_valid(valid, flow)
    writers = {".flo": _write_flo, ".png": _write_kitti_png, ".npy": _write_npy}
    with atomic_path(path) as tmp:
        writers[suffix](tmp, flow, valid)


def _checked_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(f"unknown flow file extension {path.suffix!r} for {path}; "
                         f"expected one of {', '.join(_SUFFIXES)}")
    return suffix


def check_flow(flow, name: str = "flow") -> np.ndarray:
    """A finite-shaped numeric (H, W, 2) flow as float32; ValueError naming ``name`` otherwise."""
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.shape[0] == 0 or flow.shape[1] == 0:
        raise ValueError(f"{name} must have shape (H, W, 2) with H, W > 0, got {flow.shape}")
    if not (np.issubdtype(flow.dtype, np.floating) or np.issubdtype(flow.dtype, np.integer)):
        raise ValueError(f"{name} must be a float or integer array, got dtype {flow.dtype}")
    return flow.astype(np.float32)


def check_valid(valid: np.ndarray | None, flow: np.ndarray) -> np.ndarray:
    finite = np.isfinite(flow).all(axis=2)
    if valid is None:
        return finite
    valid = np.asarray(valid)
    if valid.dtype != bool or valid.shape != flow.shape[:2]:
        raise ValueError(f"valid must be a bool array of shape {flow.shape[:2]}, "
                         f"got {valid.dtype} {valid.shape}")
    return valid & finite


def _read_flo(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = path.read_bytes()
    if len(data) < _FLO_HEADER_BYTES:
        raise ValueError(f"{path}: truncated .flo file ({len(data)} bytes, no header)")
    magic = np.frombuffer(data, "<f4", count=1)[0]
    width, height = (int(v) for v in np.frombuffer(data, "<i4", count=2, offset=4))
    if magic != FLO_MAGIC:
        raise ValueError(f"{path}: not a Middlebury .flo file (magic {magic!r}, "
                         f"expected {FLO_MAGIC})")
    if not (0 < width < _FLO_MAX_SIDE and 0 < height < _FLO_MAX_SIDE):
        raise ValueError(f"{path}: corrupt .flo header (width {width}, height {height})")
    expected = _FLO_HEADER_BYTES + 8 * width * height
    if len(data) != expected:
        raise ValueError(f"{path}: .flo file has {len(data)} bytes, expected {expected} "
                         f"for {width}x{height} (truncated or corrupt)")
    flow = np.frombuffer(data, "<f4", offset=_FLO_HEADER_BYTES).reshape(height, width, 2)
    flow = flow.astype(np.float32)
    known = np.isfinite(flow) & (np.abs(flow) < FLO_UNKNOWN_THRESHOLD)
    return flow, known.all(axis=2)


def _write_flo(path: Path, flow: np.ndarray, valid: np.ndarray) -> None:
    height, width = flow.shape[:2]
    body = np.where(valid[..., None], flow, np.float32(FLO_UNKNOWN_VALUE)).astype("<f4")
    header = np.array([FLO_MAGIC], "<f4").tobytes() + np.array([width, height], "<i4").tobytes()
    path.write_bytes(header + body.tobytes())


def _read_kitti_png(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: unreadable or corrupt PNG")
    if image.dtype != np.uint16 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{path}: not a KITTI flow PNG (expected 16-bit, 3 channels; "
                         f"got {image.dtype}, shape {image.shape})")
    # OpenCV returns BGR: the file's (u, v, valid) channels arrive as (valid, v, u).
    uv = image[..., 2:0:-1].astype(np.float32)
    flow = (uv - np.float32(KITTI_OFFSET)) / np.float32(KITTI_SCALE)
    return flow, image[..., 0] > 0


def _write_kitti_png(path: Path, flow: np.ndarray, valid: np.ndarray) -> None:
    zeroed = np.where(valid[..., None], flow, 0.0).astype(np.float64)
    encoded = np.round(zeroed * KITTI_SCALE + KITTI_OFFSET)
    if encoded.min() < 0 or encoded.max() > 65535:
        low, high = -KITTI_OFFSET / KITTI_SCALE, (65535 - KITTI_OFFSET) / KITTI_SCALE
        raise ValueError(f"flow values outside the KITTI PNG range [{low}, {high}] px")
    bgr = np.dstack([valid.astype(np.uint16), encoded[..., 1], encoded[..., 0]]).astype(np.uint16)
    if not cv2.imwrite(str(path), bgr):
        raise ValueError(f"OpenCV could not write PNG {path}")


def _read_npy(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        flow = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path}: corrupt or truncated .npy file ({err})") from err
    if not isinstance(flow, np.ndarray) or flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"{path}: .npy flow must have shape (H, W, 2), got {np.shape(flow)}")
    if not np.issubdtype(flow.dtype, np.floating):
        raise ValueError(f"{path}: .npy flow must be floating point, got {flow.dtype}")
    flow = flow.astype(np.float32)
    return flow, np.isfinite(flow).all(axis=2)


def _write_npy(path: Path, flow: np.ndarray, valid: np.ndarray) -> None:
    stored = np.where(valid[..., None], flow, np.float32(np.nan)).astype(np.float32)
    with open(path, "wb") as handle:
        np.save(handle, stored, allow_pickle=False)
