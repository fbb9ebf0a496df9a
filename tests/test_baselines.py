"""OpenCV baselines: motion recovered on a synthetic translated pair, sign convention, bad input."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter, shift as nd_shift

from hashflow import baselines

SHIFT = (3.0, -2.0)  # (u, v): img1(x) == img2(x + SHIFT)
SIZE = 64
MARGIN = 12


def _texture(size: int, seed: int = 0) -> np.ndarray:
    """Smooth random texture in [0, 1], (size, size)."""
    rng = np.random.default_rng(seed)
    noise = gaussian_filter(rng.random((size, size)), 2.0) + 0.5 * gaussian_filter(
        rng.random((size, size)), 6.0)
    return (noise - noise.min()) / (noise.max() - noise.min())


def _translated_pair(shift=SHIFT, size=SIZE):
    """img1 and img2 (H, W, 3) uint8 with img2(y) = img1(y - shift), so flow == shift."""
    big = _texture(size + 2 * MARGIN)
    moved = nd_shift(big, (shift[1], shift[0]), order=3, mode="reflect")
    crop = (slice(MARGIN, MARGIN + size),) * 2
    to_rgb = lambda a: np.repeat((a[crop] * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    return to_rgb(big), to_rgb(moved)


def _interior_points(size=SIZE, step=8, border=16):
    grid = np.arange(border, size - border, step, dtype=np.float32)
    xs, ys = np.meshgrid(grid, grid)
    return np.stack([xs.ravel(), ys.ravel()], axis=1) + 0.25


# TV-L1 is slow and DIS ultrafast / PCAFlow coarse; every method must still get close.
TOLERANCE = {"dis-ultrafast": 1.0, "pcaflow": 1.0, "farneback": 0.6}


@pytest.mark.parametrize("name", baselines.available_baselines())
def test_baseline_recovers_translation(name):
    img1, img2 = _translated_pair()
    points = _interior_points()
    flow = baselines.run_baseline(name, img1, img2, points)
    if baselines.BASELINES[name].sparse:
        assert flow.shape == (len(points), 2)
        interior = flow
    else:
        assert flow.shape == (SIZE, SIZE, 2) and flow.dtype == np.float32
        interior = flow[16:-16, 16:-16].reshape(-1, 2)
    error = np.linalg.norm(np.median(interior, axis=0) - SHIFT)
    assert error < TOLERANCE.get(name, 0.4), f"{name}: median flow {np.median(interior, 0)}"


def test_phase_correlation_sign_matches_convention():
    # img2 is img1 moved right by 5 px and up by 4 px: img1(x) = img2(x + (5, -4))
    img1, img2 = _translated_pair(shift=(5.0, -4.0))
    u, v = baselines.phase_correlation_shift(*baselines.prepare_pair(img1, img2))
    assert abs(u - 5.0) < 0.3 and abs(v + 4.0) < 0.3
    # the flow warps img2 back onto img1: img2 sampled at x + flow matches img1
    flow = baselines.BASELINES["phasecorr"](img1, img2)
    assert np.allclose(flow, (u, v))


def test_registry_entry_is_callable_and_accepts_gray_and_float():
    img1, img2 = _translated_pair()
    gray_float = img1[..., 0] / 255.0
    flow = baselines.BASELINES["dis-fast"](gray_float, img2[..., 0])
    assert flow.shape == (SIZE, SIZE, 2)


def test_availability_reports_reasons():
    status = baselines.baseline_availability()
    assert set(status) == set(baselines.BASELINES)
    assert all(reason is None or isinstance(reason, str) for reason in status.values())
    assert "unknown baseline" in baselines.unavailable_reason("no-such-method")


def test_missing_contrib_gives_reason(monkeypatch):
    monkeypatch.setattr(baselines, "_has_cv2_attr", lambda dotted: "optflow" not in dotted)
    assert "needs opencv-contrib" in baselines.unavailable_reason("tvl1")
    assert "tvl1" not in baselines.available_baselines()
    with pytest.raises(ValueError, match="needs opencv-contrib"):
        baselines.run_baseline("tvl1", *_translated_pair())


@pytest.mark.parametrize("img1, img2, match", [
    (np.zeros((32, 32, 3), np.uint8), np.zeros((32, 40, 3), np.uint8), "same size"),
    (np.zeros((32, 32, 4), np.uint8), np.zeros((32, 32, 4), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((32, 32), np.int32), np.zeros((32, 32), np.int32), "dtype"),
    (np.full((32, 32), 2.0), np.full((32, 32), 2.0), r"\[0, 1\]"),
    (np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), "at least 8x8"),
])
def test_bad_images_raise(img1, img2, match):
    with pytest.raises(ValueError, match=match):
        baselines.run_baseline("farneback", img1, img2)


def test_bad_points_raise():
    img1, img2 = _translated_pair()
    with pytest.raises(ValueError, match="point-only"):
        baselines.run_baseline("pyrlk", img1, img2)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        baselines.run_baseline("pyrlk", img1, img2, np.zeros((5, 3)))
