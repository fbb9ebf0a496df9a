"""Tests for hashflow.metrics against hand-computed values."""

import numpy as np
import pytest

from hashflow.metrics import angular_error, epe, flow_metrics


def test_epe_per_point():
    pred = np.array([[3.0, 4.0], [1.0, 1.0]])
    gt = np.zeros((2, 2))
    np.testing.assert_allclose(epe(pred, gt), [5.0, np.sqrt(2)])


def test_sparse_metrics_hand_computed():
    gt = np.array([[0.0, 0.0], [100.0, 0.0], [10.0, 0.0], [0.0, 0.0]])
    pred = gt + np.array([[0.5, 0.0], [4.0, 0.0], [0.0, 4.0], [2.0, 0.0]])
    stats = flow_metrics(pred, gt)
    assert stats["count"] == 4
    assert stats["epe_mean"] == pytest.approx((0.5 + 4 + 4 + 2) / 4)
    assert stats["epe_median"] == pytest.approx(3.0)
    assert stats["acc_1px"] == 0.25 and stats["acc_3px"] == 0.5 and stats["acc_5px"] == 1.0
    # point 1: 4 px > 3 but 4 < 5 % of 100; point 2: 4 > 3 and 4 > 0.5 -> 1 outlier in 4
    assert stats["fl_all"] == 0.25


def test_angular_error_hand_computed():
    # (1, 0, 1) vs (0, 0, 1): 45 degrees; identical vectors: 0.
    np.testing.assert_allclose(angular_error(np.array([[1.0, 0.0]]), np.zeros((1, 2))), [45.0])
    stats = flow_metrics(np.array([[1.0, 0.0], [2.0, 3.0]]), np.array([[0.0, 0.0], [2.0, 3.0]]))
    assert stats["angular_error"] == pytest.approx(22.5)


def test_dense_with_mask():
    gt = np.zeros((4, 5, 2))
    pred = np.zeros((4, 5, 2))
    pred[0, 0] = [100.0, 0.0]
    valid = np.ones((4, 5), bool)
    valid[0, 0] = False
    stats = flow_metrics(pred, gt, valid)
    assert stats["count"] == 19 and stats["epe_mean"] == 0.0 and stats["acc_1px"] == 1.0


def test_nan_in_gt_is_invalid_by_default_but_an_error_when_marked_valid():
    gt = np.zeros((2, 2, 2))
    gt[0, 1] = np.nan
    assert flow_metrics(np.zeros((2, 2, 2)), gt)["count"] == 3
    with pytest.raises(ValueError, match="gt has NaN"):
        flow_metrics(np.zeros((2, 2, 2)), gt, np.ones((2, 2), bool))


def test_errors():
    with pytest.raises(ValueError, match="same shape"):
        flow_metrics(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        flow_metrics(np.zeros((3, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="no valid"):
        flow_metrics(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros(3, bool))
    with pytest.raises(ValueError, match="valid must"):
        flow_metrics(np.zeros((3, 2)), np.zeros((3, 2)), np.ones(4, bool))
    with pytest.raises(ValueError, match="pred has NaN"):
        flow_metrics(np.full((3, 2), np.nan), np.zeros((3, 2)))
