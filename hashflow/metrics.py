"""Optical-flow error metrics: end-point error, threshold accuracies, Fl-all, angular error.

All statistics are pooled over the valid points of one call (dense pixels or sparse points);
to report the mean of per-image means, call once per image and average the results.
"""

from __future__ import annotations

import numpy as np

ACCURACY_THRESHOLDS = (1.0, 3.0, 5.0)
FL_ABS_THRESHOLD = 3.0
FL_REL_THRESHOLD = 0.05


def epe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-point end-point error ``|pred - gt|``.

    Args:
        pred, gt: (..., 2) arrays of (u, v) in pixels, the same shape, e.g. (H, W, 2) or (N, 2).
    Returns:
        (...) float64, the Euclidean distance per point.
    """
    pred, gt = _checked_pair(pred, gt)
    return np.linalg.norm(pred - gt, axis=-1)


def flow_metrics(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> dict:
    """Error statistics of ``pred`` against ``gt`` over the valid points, pooled.

    Args:
        pred: (H, W, 2) dense or (N, 2) sparse flow, (u, v) in pixels.
        gt: ground truth of the same shape.
        valid: (H, W) or (N,) bool, or None for "wherever gt is finite".
    Returns:
        dict with ``epe_mean``, ``epe_median`` (px); ``acc_1px``, ``acc_3px``, ``acc_5px``
        (share of valid points with EPE below the threshold); ``fl_all`` (share with
        EPE > 3 px and EPE > 5 % of |gt|); ``angular_error`` (mean, degrees, Barron et al.'s
        angle between (u, v, 1) vectors); ``count`` (number of valid points).
    Raises:
        ValueError on a shape mismatch, a bad mask, NaN in gt or pred at a valid point, or
        no valid point.
    """
    pred, gt = _checked_pair(pred, gt)
    mask = _checked_mask(valid, gt)
    pred, gt = pred[mask], gt[mask]
    _check_finite(pred, gt)
    errors = np.linalg.norm(pred - gt, axis=-1)
    stats = {"epe_mean": float(errors.mean()), "epe_median": float(np.median(errors))}
    for threshold in ACCURACY_THRESHOLDS:
        stats[f"acc_{threshold:g}px"] = float((errors < threshold).mean())
    stats["fl_all"] = _fl_all(errors, gt)
    stats["angular_error"] = float(angular_error(pred, gt).mean())
    stats["count"] = int(errors.size)
    return stats


def angular_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-point angular error in degrees (Barron, Fleet, Beauchemin 1994).

    The angle between the 3-D vectors (u_p, v_p, 1) and (u_g, v_g, 1).

    Args:
        pred, gt: (..., 2) arrays of the same shape.
    Returns:
        (...) float64 angles in [0, 180) degrees.
    """
    pred, gt = _checked_pair(pred, gt)
    dot = (pred * gt).sum(axis=-1) + 1.0
    norms = np.sqrt(((pred**2).sum(axis=-1) + 1.0) * ((gt**2).sum(axis=-1) + 1.0))
    return np.degrees(np.arccos(np.clip(dot / norms, -1.0, 1.0)))


def _fl_all(errors: np.ndarray, gt: np.ndarray) -> float:
    """KITTI outlier rate: EPE > 3 px and EPE > 5 % of the ground-truth magnitude."""
    magnitude = np.linalg.norm(gt, axis=-1)
    outliers = (errors > FL_ABS_THRESHOLD) & (errors > FL_REL_THRESHOLD * magnitude)
    return float(outliers.mean())


def _checked_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if gt.ndim < 1 or gt.shape[-1] != 2:
        raise ValueError(f"flow must have shape (H, W, 2) or (N, 2), got gt {gt.shape}")
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt must have the same shape, got {pred.shape} and {gt.shape}")
    return pred, gt


def _checked_mask(valid: np.ndarray | None, gt: np.ndarray) -> np.ndarray:
    if valid is None:
        mask = np.isfinite(gt).all(axis=-1)
    else:
        mask = np.asarray(valid)
        if mask.dtype != bool or mask.shape != gt.shape[:-1]:
            raise ValueError(f"valid must be a bool array of shape {gt.shape[:-1]}, "
                             f"got {mask.dtype} {mask.shape}")
    if not mask.any():
        raise ValueError("no valid points to evaluate (the mask or gt excludes all of them)")
    return mask


def _check_finite(pred: np.ndarray, gt: np.ndarray) -> None:
    if not np.isfinite(gt).all():
        raise ValueError("gt has NaN or inf at points marked valid")
    if not np.isfinite(pred).all():
        raise ValueError("pred has NaN or inf at valid points")
