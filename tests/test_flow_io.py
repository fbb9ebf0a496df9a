"""Tests for hashflow.flow_io: .flo / KITTI .png / .npy reading and writing."""

import numpy as np
import pytest

from hashflow.flow_io import read_flow, write_flow
from hashflow.paths import data_path


def _random_flow(rng, shape=(7, 9), scale=20.0):
    return (rng.standard_normal((*shape, 2)) * scale).astype(np.float32)


def _random_mask(rng, shape=(7, 9)):
    mask = rng.random(shape) > 0.3
    mask[0, 0] = True
    return mask


def test_fixture_flo_reads():
    path = data_path("flow", "fixtures", "00001_flow.flo")
    if path is None:
        pytest.skip("shared data flow/fixtures/00001_flow.flo not found (set HASHFLOW_DATA)")
    flow, valid = read_flow(path)
    assert flow.shape == (50, 50, 2) and flow.dtype == np.float32
    assert valid.shape == (50, 50) and valid.all()
    assert np.isfinite(flow).all()
    # this crop moves up and to the left by a few to about ten pixels
    assert -12 < flow.min() and flow.max() < 2
    assert 1 < np.linalg.norm(flow, axis=2).mean() < 15


def test_middlebury_unknown_pixels():
    path = data_path("flow", "middlebury", "RubberWhale", "flow10.flo")
    if path is None:
        pytest.skip("shared data flow/middlebury/RubberWhale/flow10.flo not found")
    flow, valid = read_flow(path)
    assert flow.shape == (388, 584, 2)
    assert 0.9 < valid.mean() < 1.0 and (flow[~valid] == 0).all()
    assert np.abs(flow[valid]).max() < 10


@pytest.mark.parametrize("suffix", [".flo", ".npy"])
def test_round_trip_exact_with_mask(tmp_path, suffix):
    rng = np.random.default_rng(0)
    flow, mask = _random_flow(rng), _random_mask(rng)
    path = tmp_path / f"f{suffix}"
    write_flow(path, flow, mask)
    back, valid = read_flow(path)
    np.testing.assert_array_equal(valid, mask)
    np.testing.assert_array_equal(back[mask], flow[mask])
    assert (back[~mask] == 0).all()


def test_png_round_trip_exact_on_64th_pixels(tmp_path):
    rng = np.random.default_rng(1)
    flow = (np.round(_random_flow(rng) * 64) / 64).astype(np.float32)
    mask = _random_mask(rng)
    write_flow(tmp_path / "f.png", flow, mask)
    back, valid = read_flow(tmp_path / "f.png")
    np.testing.assert_array_equal(valid, mask)
    np.testing.assert_array_equal(back[mask], flow[mask])


def test_png_channel_order(tmp_path):
    flow = np.zeros((2, 3, 2), np.float32)
    flow[..., 0], flow[..., 1] = 1.5, -2.25
    write_flow(tmp_path / "f.png", flow)
    back, valid = read_flow(tmp_path / "f.png")
    assert valid.all() and (back[..., 0] == 1.5).all() and (back[..., 1] == -2.25).all()


def test_nan_means_invalid_without_mask(tmp_path):
    flow = np.ones((3, 4, 2), np.float32)
    flow[1, 2, 0] = np.nan
    for suffix in (".flo", ".npy", ".png"):
        write_flow(tmp_path / f"n{suffix}", flow)
        _, valid = read_flow(tmp_path / f"n{suffix}")
        assert valid.sum() == 11 and not valid[1, 2]


def test_flo_unknown_is_written_as_1e10(tmp_path):
    flow = np.zeros((2, 2, 2), np.float32)
    mask = np.array([[True, False], [True, True]])
    write_flow(tmp_path / "u.flo", flow, mask)
    raw = np.frombuffer((tmp_path / "u.flo").read_bytes(), "<f4", offset=12).reshape(2, 2, 2)
    assert raw[0, 1, 0] == np.float32(1e10) and raw[0, 0, 0] == 0


def test_truncated_flo_raises(tmp_path):
    path = tmp_path / "t.flo"
    write_flow(path, np.zeros((4, 4, 2), np.float32))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match="t.flo"):
        read_flow(path)


@pytest.mark.parametrize("name,content", [
    ("foreign.flo", b"PNG not a flow file at all"),
    ("short.flo", b"PIE"),
    ("foreign.png", b"\x89PNG\r\n\x1a\n garbage"),
    ("foreign.npy", b"\x93NUMPY garbage"),
])
def test_corrupt_files_raise(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=name):
        read_flow(tmp_path / name)


def test_8bit_png_is_not_kitti(tmp_path):
    import cv2
    cv2.imwrite(str(tmp_path / "rgb.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="KITTI"):
        read_flow(tmp_path / "rgb.png")


def test_wrong_npy_shape_raises(tmp_path):
    np.save(tmp_path / "w.npy", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        read_flow(tmp_path / "w.npy")


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.flo"):
        read_flow(tmp_path / "nope.flo")
    with pytest.raises(ValueError, match="extension"):
        read_flow(tmp_path / "x.txt")
    with pytest.raises(ValueError, match="extension"):
        write_flow(tmp_path / "x.txt", np.zeros((2, 2, 2), np.float32))


@pytest.mark.parametrize("flow", [np.zeros((4, 4)), np.zeros((4, 4, 3)), np.zeros((4, 4, 2), bool),
                                  [[0.0, 0.0]]])
def test_write_rejects_bad_flow(tmp_path, flow):
    with pytest.raises(ValueError, match="flow"):
        write_flow(tmp_path / "b.flo", flow)
    assert not (tmp_path / "b.flo").exists()


def test_write_rejects_bad_mask(tmp_path):
    with pytest.raises(ValueError, match="valid"):
        write_flow(tmp_path / "b.flo", np.zeros((4, 4, 2)), np.ones((4, 5), bool))


def test_png_out_of_range_raises(tmp_path):
    with pytest.raises(ValueError, match="KITTI"):
        write_flow(tmp_path / "big.png", np.full((2, 2, 2), 600.0, np.float32))
