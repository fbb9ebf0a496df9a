"""Tests for hashflow.warp: backward warping with flow, numpy and torch."""

import numpy as np
import pytest
import torch

from hashflow.warp import warp, warp_valid_mask


def _ramp_image(height=20, width=24):
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.dstack([3 * x + 0.5 * y, x - y, 0.25 * x * y]) / 100.0


def test_translation_recovered_in_interior():
    # img1(x) = img2(x + t) with img2 = img1 shifted by t = (2.5, -1.25)
    t = np.array([2.5, -1.25])
    img1 = _ramp_image()
    y, x = np.mgrid[0:20, 0:24].astype(np.float64)
    img2 = np.dstack([3 * (x - t[0]) + 0.5 * (y - t[1]), (x - t[0]) - (y - t[1]),
                      0.25 * (x - t[0]) * (y - t[1])]) / 100.0
    flow = np.broadcast_to(t, (20, 24, 2)).copy()
    out = warp(img2, flow)
    valid = warp_valid_mask(flow)
    assert out.dtype == np.float64 and out.shape == img1.shape
    # bilinear sampling reproduces functions of 1, x, y, xy exactly
    np.testing.assert_allclose(out[valid], img1[valid], atol=1e-12)
    assert not valid[:, -3:].any() and not valid[0].any() and valid[5:, :20].all()


def test_uint8_and_gray_keep_type():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    assert warp(image, np.zeros((10, 12, 2), np.float32)).tolist() == image.tolist()
    gray = image[..., 0]
    flow = np.zeros((10, 12, 2), np.float32)
    flow[..., 0] = 1.0
    out = warp(gray, flow)
    assert out.dtype == np.uint8 and out.shape == (10, 12)
    np.testing.assert_array_equal(out[:, :-1], gray[:, 1:])
    assert (out[:, -1] == 0).all()


def test_many_channels():
    image = np.random.default_rng(0).random((6, 7, 9)).astype(np.float32)
    out = warp(image, np.zeros((6, 7, 2), np.float32))
    np.testing.assert_allclose(out, image, atol=1e-6)


def test_torch_matches_numpy_and_is_differentiable():
    rng = np.random.default_rng(1)
    image = rng.random((8, 9, 3))
    flow = rng.normal(0, 2, (8, 9, 2))
    expected = warp(image, flow)
    image_t = torch.from_numpy(image).permute(2, 0, 1)[None].requires_grad_()
    flow_t = torch.from_numpy(flow).permute(2, 0, 1)[None].requires_grad_()
    out = warp(image_t, flow_t)
    np.testing.assert_allclose(out[0].permute(1, 2, 0).detach().numpy(), expected, atol=1e-12)
    out.sum().backward()
    assert flow_t.grad is not None and image_t.grad is not None
    assert warp_valid_mask(flow_t).shape == (1, 8, 9)


def test_integer_shift_torch():
    image = torch.arange(2 * 1 * 5 * 6, dtype=torch.float32).reshape(2, 1, 5, 6)
    flow = torch.zeros(2, 2, 5, 6)
    flow[:, 1] = 1.0  # sample one row down
    out = warp(image, flow)
    torch.testing.assert_close(out[:, :, :-1], image[:, :, 1:])


def test_bad_inputs():
    with pytest.raises(ValueError, match="flow must"):
        warp(np.zeros((4, 4, 3), np.float32), np.zeros((4, 5, 2), np.float32))
    with pytest.raises(ValueError, match="numpy image"):
        warp(np.zeros((4, 4, 3), np.int64), np.zeros((4, 4, 2), np.float32))
    with pytest.raises(ValueError, match="torch flow"):
        warp(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 5))
    with pytest.raises(ValueError, match="torch image"):
        warp(torch.zeros(3, 4, 4), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="numpy array or a torch"):
        warp([[0.0]], np.zeros((1, 1, 2)))
