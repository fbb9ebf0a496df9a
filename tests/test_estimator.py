"""Flow solver on synthetic pairs with known motion (CPU, small images)."""

import cv2
import numpy as np
import pytest
import torch

import hashflow
from hashflow.estimator import FlowEstimator

SIZE = 64
FAST = dict(encode_steps=80, tile_sizes=(32,), search_radius=12.0, search_step=2.0, starts=2)


def shifted_pair(source: np.ndarray, shift, size=SIZE):
    """img1 = crop, img2 = crop moved by shift (u, v): img1(x) = img2(x + shift).

    Lanczos resampling: bilinear would bias fine texture by ~0.1 px (linear phase matters).
    """
    u, v = shift
    matrix = np.float32([[1, 0, 32], [0, 1, 32]])
    img1 = cv2.warpAffine(source, matrix, (size, size), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR)
    matrix2 = np.float32([[1, 0, 32 - u], [0, 1, 32 - v]])
    img2 = cv2.warpAffine(source, matrix2, (size, size),
                          flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LANCZOS4)
    return img1, img2


def warped_pair(source: np.ndarray, amplitude=1.5, size=SIZE):
    """img2 = img1 under a smooth non-rigid warp; returns img1, img2 and the true flow."""
    img1 = np.ascontiguousarray(source[32:32 + size, 32:32 + size])
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    g = np.stack([amplitude * np.sin(2 * np.pi * ys / size),
                  amplitude * np.cos(2 * np.pi * xs / size)], -1)
    img2 = cv2.remap(source, xs - g[..., 0] + 32, ys - g[..., 1] + 32, cv2.INTER_LINEAR)
    flow = g.copy()
    for _ in range(20):  # flow(x) = g(x + flow(x)), fixed point
        flow = np.stack([cv2.remap(g[..., c], xs + flow[..., 0], ys + flow[..., 1],
                                   cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                         for c in (0, 1)], -1)
    return img1, img2, flow


@pytest.fixture(scope="module")
def source():
    from skimage import data
    return np.ascontiguousarray(data.astronaut()[100:400:2, 150:450:2])


@pytest.fixture(scope="module")
def estimator():
    return FlowEstimator(order=2, encoder="direct", **FAST)


def interior_points(count=24, margin=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(margin, SIZE - 1 - margin, size=(count, 2)).astype(np.float32)


def mean_epe(flow, truth):
    return float(np.linalg.norm(flow - truth, axis=-1).mean())


@pytest.mark.parametrize("shift", [(3.0, -2.0), (4.5, 2.25)])
def test_image_mode_recovers_translation(estimator, source, shift):
    img1, img2 = shifted_pair(source, shift)
    flow = estimator.estimate(img1, img2, mode="image", points=interior_points())
    assert mean_epe(flow, np.array(shift)) < 0.05


@pytest.mark.parametrize("mode, bound", [("patch", 0.5), ("pixel", 0.7)])
def test_local_modes_recover_subpixel_translation(estimator, source, mode, bound):
    img1, img2 = shifted_pair(source, (4.5, 2.25))
    flow = estimator.estimate(img1, img2, mode=mode, points=interior_points())
    assert flow.shape == (24, 2) and flow.dtype == np.float32
    assert mean_epe(flow, np.array([4.5, 2.25])) < bound


def test_patch_mode_follows_non_rigid_warp(estimator, source):
    img1, img2, truth = warped_pair(source)
    points = interior_points(seed=1)
    flow = estimator.estimate(img1, img2, mode="patch", points=points)
    expected = truth[points[:, 1].round().astype(int), points[:, 0].round().astype(int)]
    # measured 0.60 px (zero flow: 1.50 px); 3x3 patches at 64 px are noise-limited
    assert mean_epe(flow, expected) < 0.8
    assert mean_epe(flow, expected) < 0.5 * mean_epe(np.zeros_like(expected), expected)


def test_dense_output_agrees_with_points(estimator, source):
    img1, img2 = shifted_pair(source, (3.0, -2.0))
    dense = estimator.estimate(img1, img2, mode="pixel")
    assert dense.shape == (SIZE, SIZE, 2) and dense.dtype == np.float32
    points = np.array([[10.0, 12.0], [40.0, 33.0], [25.0, 50.0]], dtype=np.float32)
    sparse = estimator.estimate(img1, img2, mode="pixel", points=points)
    at = dense[points[:, 1].astype(int), points[:, 0].astype(int)]
    assert np.allclose(sparse, at, atol=1e-3)


def test_torch_batch_equals_loop(estimator, source):
    pairs = [shifted_pair(source, (3.0, -2.0)), shifted_pair(source, (-2.0, 1.0))]
    as_tensor = lambda image: torch.from_numpy(image).permute(2, 0, 1).float() / 255  # noqa: E731
    batch1 = torch.stack([as_tensor(a) for a, _ in pairs])
    batch2 = torch.stack([as_tensor(b) for _, b in pairs])
    points = torch.from_numpy(interior_points(8))
    batched = estimator.estimate(batch1, batch2, mode="patch", points=points)
    assert isinstance(batched, torch.Tensor) and batched.shape == (2, 8, 2)
    for b in range(2):
        single = estimator.estimate(batch1[b], batch2[b], mode="patch", points=points)
        assert torch.allclose(batched[b], single)
    dense = estimator.estimate(batch1, batch2, mode="image")
    assert dense.shape == (2, 2, SIZE, SIZE)


def test_encodings_are_cached(source):
    est = FlowEstimator(order=1, encoder="direct", **FAST)
    img1, img2 = shifted_pair(source, (1.0, 1.0))
    first = est.encode(img1)
    assert est.encode(img1.copy()) is first
    assert est.encode(img2) is not first


@pytest.mark.parametrize("img2, points, mode, match", [
    (np.zeros((32, 32, 3), np.uint8), None, "patch", "same size"),
    (np.zeros((64, 64, 4), np.uint8), None, "patch", "expected"),
    (np.full((64, 64, 3), np.nan, np.float32), None, "patch", "NaN"),
    (None, np.array([[70.0, 3.0]]), "patch", "outside"),
    (None, np.array([[np.nan, 3.0]]), "patch", "NaN"),
    (None, np.zeros((3, 3)), "patch", r"\(N, 2\)"),
    (None, None, "sparse", "mode must be"),
])
def test_bad_inputs_raise(source, img2, points, mode, match):
    img1 = np.ascontiguousarray(source[:64, :64])
    img2 = img1 if img2 is None else img2
    with pytest.raises(ValueError, match=match):
        hashflow.estimate(img1, img2, mode=mode, points=points, encoder="direct", encode_steps=1)


def test_tiny_images_and_bad_options_raise():
    tiny = np.zeros((12, 12, 3), np.uint8)
    with pytest.raises(ValueError, match="at least 16x16"):
        hashflow.estimate(tiny, tiny, encoder="direct")
    big = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown solver option"):
        hashflow.estimate(big, big, encoder="direct", not_an_option=3)
    with pytest.raises(ValueError, match="order"):
        hashflow.estimate(big, big, order=5)


def test_dense_flow_on_real_chairs_fixture():
    """Real non-rigid flow (a 50x50 FlyingChairs crop); DIS-medium measures 0.90 px here."""
    from conftest import require_data
    from hashflow.flow_io import read_flow
    from hashflow.metrics import flow_metrics
    folder = require_data("flow", "fixtures")
    img1 = hashflow.load_image(folder / "00001_img1.ppm")
    img2 = hashflow.load_image(folder / "00001_img2.ppm")
    truth, valid = read_flow(folder / "00001_flow.flo")
    flow = hashflow.estimate(img1, img2, mode="pixel", encoder="direct", encode_steps=150)
    assert flow.shape == truth.shape
    assert flow_metrics(flow, truth, valid)["epe_mean"] < 1.2
