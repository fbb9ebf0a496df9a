"""hashflow.viz: every figure writes a readable PNG atomically and returns the figure."""

import cv2
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from hashflow import viz
from hashflow.decoder import Decoder
from hashflow.encoding import HashEncoding
from hashflow.grid import HashGridConfig


@pytest.fixture
def ramp_flow() -> np.ndarray:
    """(64, 64, 2): u = 2 px everywhere, v from -3 to 3 px down the rows."""
    v = np.repeat(np.linspace(-3, 3, 64, dtype=np.float32)[:, None], 64, axis=1)
    return np.dstack([np.full((64, 64), 2.0, np.float32), v])


@pytest.fixture
def random_encoding() -> HashEncoding:
    """An unfitted 64x64 encoding: the finest level (N = 64, 65**2 > 4096) is hashed."""
    config = HashGridConfig().for_image(64, 64)
    tables = torch.randn(config.levels, config.table_size, config.features,
                         generator=torch.Generator().manual_seed(0))
    return HashEncoding(tables, config, (64, 64), Decoder(config.feature_dim))


def assert_png(path):
    image = cv2.imread(str(path))
    assert image is not None and image.size > 0
    assert not [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}")]
    return image


def test_flow_figure_writes_png_with_legend(tmp_path, ramp_flow):
    figure = viz.flow_figure(ramp_flow, tmp_path / "flow.png", max_radius=5.0)
    assert isinstance(figure, Figure)
    assert len(figure.axes[0].child_axes) == 1  # the wheel inset
    assert "5 px" in figure.axes[0].get_title()
    assert_png(tmp_path / "flow.png")


def test_flow_figure_without_path_writes_nothing(tmp_path, ramp_flow):
    assert isinstance(viz.flow_figure(ramp_flow, legend=False), Figure)
    assert list(tmp_path.iterdir()) == []


def test_quiver_figure(tmp_path, natural_crop, ramp_flow):
    figure = viz.quiver_figure(natural_crop, ramp_flow, tmp_path / "q.png", stride=8)
    quiver = figure.axes[0].collections[0]
    assert len(quiver.get_offsets()) == 8 * 8
    assert_png(tmp_path / "q.png")


def test_warp_and_error_figures(tmp_path, natural_crop, ramp_flow):
    viz.warp_figure(natural_crop, natural_crop, np.zeros_like(ramp_flow), tmp_path / "w.png")
    figure = viz.error_figure(ramp_flow, ramp_flow + [3.0, 4.0], tmp_path / "e.png", vmax=6)
    assert "mean 5 px" in figure.axes[0].get_title()  # |(3, 4)| = 5 at every pixel
    assert_png(tmp_path / "w.png")
    assert_png(tmp_path / "e.png")


def test_image_figure(tmp_path, natural_crop):
    viz.image_figure({"img1": natural_crop, "img2": natural_crop / 255.0}, tmp_path / "i.png")
    assert_png(tmp_path / "i.png")


def test_encoding_figure_labels_dense_and_hashed(tmp_path, natural_crop, random_encoding):
    figure = viz.encoding_figure(random_encoding, natural_crop, tmp_path / "enc.png")
    titles = [axes.get_title() for axes in figure.axes if axes.get_title()]
    assert titles[0] == "original" and titles[1].startswith("decoded")
    level_titles = titles[2:]
    assert len(level_titles) == random_encoding.config.levels
    assert "dense" in level_titles[0] and "hashed" in level_titles[-1]
    assert_png(tmp_path / "enc.png")


def test_level_feature_maps_read_tables_through_the_hash(random_encoding):
    maps = viz.level_feature_maps(random_encoding, feature=1)
    resolutions = random_encoding.config.resolutions()
    assert [m.shape for m in maps] == [(n + 1, n + 1) for n in resolutions]
    finest = random_encoding.tables[-1]
    # vertex (ix=3, iy=5): (3 XOR (5 * 2654435761 mod 2**32)) mod 4096 = 118, by hand
    assert maps[-1][5, 3] == pytest.approx(float(finest[118, 1]))
    # dense level 0: vertex (ix, iy) is entry iy * (N + 1) + ix
    n0 = resolutions[0]
    assert maps[0][2, 7] == pytest.approx(float(random_encoding.tables[0, 2 * (n0 + 1) + 7, 1]))


def test_bad_inputs(natural_crop, ramp_flow, random_encoding):
    with pytest.raises(ValueError, match="flow"):
        viz.flow_figure(ramp_flow[..., 0])
    with pytest.raises(ValueError, match="image is"):
        viz.quiver_figure(natural_crop[:32], ramp_flow)
    with pytest.raises(ValueError, match="stride"):
        viz.quiver_figure(natural_crop, ramp_flow, stride=0)
    with pytest.raises(ValueError, match="feature"):
        viz.level_feature_maps(random_encoding, feature=2)
    with pytest.raises(ValueError, match="encoding is for"):
        viz.encoding_figure(random_encoding, natural_crop[:32, :32])
    with pytest.raises(ValueError, match="valid"):
        viz.error_figure(ramp_flow, ramp_flow, valid=np.ones((3, 3), bool))
