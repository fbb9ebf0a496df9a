"""Tests for hashflow.flow_viz."""

import numpy as np
import pytest

from hashflow.flow_viz import color_wheel_legend, flow_to_color


def test_shape_dtype_and_invalid_black():
    flow = np.random.default_rng(0).standard_normal((6, 8, 2)).astype(np.float32)
    valid = np.ones((6, 8), bool)
    valid[2, 3] = False
    image = flow_to_color(flow, valid=valid)
    assert image.shape == (6, 8, 3) and image.dtype == np.uint8
    assert (image[2, 3] == 0).all() and image[~valid].sum() == 0


def test_zero_flow_is_white_and_nan_black():
    flow = np.zeros((3, 3, 2), np.float32)
    flow[0, 0] = np.nan
    image = flow_to_color(flow)
    assert (image[1, 1] == 255).all() and (image[0, 0] == 0).all()


def test_fixed_radius_makes_frames_comparable():
    small = np.full((2, 2, 2), 1.0)
    large = np.full((2, 2, 2), 4.0)
    # auto scaling saturates both identically; a fixed radius keeps the small one paler
    np.testing.assert_array_equal(flow_to_color(small), flow_to_color(large))
    assert flow_to_color(small, max_radius=8).sum() > flow_to_color(large, max_radius=8).sum()


def test_rightward_flow_is_reddish():
    flow = np.zeros((1, 1, 2))
    flow[..., 0] = 1.0
    red, green, blue = flow_to_color(flow)[0, 0].astype(int)
    assert red > green and red > blue


def test_legend():
    legend = color_wheel_legend(size=31)
    assert legend.shape == (31, 31, 3) and legend.dtype == np.uint8
    assert (legend[0, 0] == 0).all() and (legend[15, 15] == 255).all()
    with pytest.raises(ValueError, match="size"):
        color_wheel_legend(size=1)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        flow_to_color(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="max_radius"):
        flow_to_color(np.zeros((4, 4, 2)), max_radius=0)
    with pytest.raises(ValueError, match="valid"):
        flow_to_color(np.zeros((4, 4, 2)), valid=np.ones((3, 4), bool))
