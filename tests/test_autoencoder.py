"""Tests for the hash encoder head and the hash autoencoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import hashflow.autoencoder as autoencoder_module
from hashflow.autoencoder import AutoencoderConfig, HashAutoencoder, load_pretrained
from hashflow.encoding import decode
from hashflow.grid import HashGridConfig, lagrange_weights
from hashflow.images import psnr
from hashflow.models.hash_head import (HashHead, HashHeadConfig, bilinear_matrix, grid_to_table,
                                       sample_at_pixels, scatter_mean, used_vertex_count)
from hashflow.models.mit import MiTConfig, MixTransformer

# Resolutions 4, 8, 16, 32; T = 2**7 = 128: levels 0-1 dense (25, 81 vertices), 2-3 hashed.
TINY_GRID = HashGridConfig(levels=4, features=2, log2_table_size=7, base_resolution=4,
                           finest_resolution=32, order=2)
TINY_MIT = MiTConfig(hidden_sizes=(8, 16, 16, 16), num_heads=(1, 1, 1, 1))
TINY = AutoencoderConfig(grid=TINY_GRID, mit=TINY_MIT,
                         head=HashHeadConfig(embed_dim=16, vertex_hidden=8), decoder_hidden=16)


def hand_hash(ix: int, iy: int, table_size: int) -> int:
    """Instant-NGP hash written out with Python integers."""
    return (ix ^ ((iy * 2654435761) % 2**32)) % table_size


@pytest.fixture(scope="module")
def head_outputs():
    torch.manual_seed(0)
    mit, head = MixTransformer(TINY_MIT), HashHead(TINY_MIT, TINY_GRID, TINY.head)
    image = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        features = mit(image)
        grids = head.vertex_grids(features, image, TINY_GRID)
        tables = head(features, image, TINY_GRID)
    return grids, tables


def test_tiny_grid_has_dense_and_hashed_levels():
    assert TINY_GRID.resolutions() == [4, 8, 16, 32]
    assert [TINY_GRID.is_dense(level) for level in range(4)] == [True, True, False, False]


def test_head_output_shape(head_outputs):
    grids, tables = head_outputs
    assert tables.shape == (2, 4, 128, 2)
    assert [tuple(g.shape) for g in grids] == [(2, 2, n + 1, n + 1) for n in (4, 8, 16, 32)]


def test_dense_level_table_is_the_grid(head_outputs):
    grids, tables = head_outputs
    for level in (0, 1):
        n = TINY_GRID.resolutions()[level]
        for iy, ix in [(0, 0), (0, n), (n, 0), (2, 3), (n, n)]:
            entry = iy * (n + 1) + ix
            torch.testing.assert_close(tables[:, level, entry], grids[level][:, :, iy, ix])
        assert torch.all(tables[:, level, (n + 1) ** 2:] == 0)


@pytest.mark.parametrize("level", [2, 3])
def test_hashed_level_is_scatter_mean_of_its_vertices(head_outputs, level):
    grids, tables = head_outputs
    n, size = TINY_GRID.resolutions()[level], TINY_GRID.table_size
    sums, counts = torch.zeros(2, size, 2), torch.zeros(size)
    for iy in range(n + 1):
        for ix in range(n + 1):
            entry = hand_hash(ix, iy, size)
            sums[:, entry] += grids[level][:, :, iy, ix]
            counts[entry] += 1
    expected = sums / counts.clamp(min=1).view(1, -1, 1)
    torch.testing.assert_close(tables[:, level], expected)


def test_non_square_hashed_level_uses_only_touched_vertices():
    n, level, image_size = 32, 3, (16, 32)
    grid = torch.randn(1, 2, n + 1, n + 1)
    rows = used_vertex_count(n, 32, 16, order=2)
    sums, counts = torch.zeros(1, 128, 2), torch.zeros(128)
    for iy in range(rows):
        for ix in range(n + 1):
            sums[:, hand_hash(ix, iy, 128)] += grid[:, :, iy, ix]
            counts[hand_hash(ix, iy, 128)] += 1
    expected = sums / counts.clamp(min=1).view(1, -1, 1)
    torch.testing.assert_close(grid_to_table(grid, TINY_GRID, level, image_size), expected)


@pytest.mark.parametrize("count, extent, n, order", [(16, 32, 32, 2), (20, 64, 45, 1),
                                                     (64, 64, 64, 2), (33, 50, 7, 3)])
def test_used_vertex_count_matches_the_taps_of_every_pixel(count, extent, n, order):
    coords = (torch.arange(count, dtype=torch.float64) + 0.5) * n / extent
    highest = int(coords.floor().max()) + order
    assert used_vertex_count(n, extent, count, order) == min(highest, n) + 1
    assert lagrange_weights(coords - coords.floor(), order).shape == (count, 2 * order)


def test_scatter_mean_hand_value():
    values = torch.tensor([[[1.0], [3.0], [5.0], [7.0]]])
    table = scatter_mean(values, torch.tensor([2, 0, 2, 2]), 4)
    torch.testing.assert_close(table.flatten(), torch.tensor([3.0, 0.0, 13 / 3, 0.0]))


def test_sample_at_pixels_matches_grid_sample():
    torch.manual_seed(2)
    feature_map = torch.randn(2, 5, 7, 9)
    xs, ys = torch.linspace(-3, 40, 13), torch.linspace(-2, 30, 11)
    gx, gy = 2 * (xs / 4) / 8 - 1, 2 * (ys / 4) / 6 - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], -1).expand(2, -1, -1, -1)
    expected = F.grid_sample(feature_map, grid, align_corners=True, padding_mode="border")
    torch.testing.assert_close(sample_at_pixels(feature_map, 4, xs, ys), expected)
    assert torch.allclose(bilinear_matrix(xs, 9, 4).sum(1), torch.ones(13))


def test_head_rejects_a_grid_of_another_shape():
    head = HashHead(TINY_MIT, TINY_GRID, TINY.head)
    features = MixTransformer(TINY_MIT)(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="levels"):
        head(features, torch.rand(1, 3, 32, 32), HashGridConfig(levels=5, finest_resolution=32))


@pytest.fixture()
def tiny_model() -> HashAutoencoder:
    torch.manual_seed(0)
    return HashAutoencoder(TINY)


def photo(height: int = 48, width: int = 64) -> np.ndarray:
    from skimage import data
    return np.ascontiguousarray(data.astronaut()[80:80 + height * 2:2, 180:180 + width * 2:2])


def test_encode_decode_gives_an_image(tiny_model):
    encoding = tiny_model.encode(photo())
    assert encoding.tables.shape == (4, 128, 2)
    assert encoding.image_size == (48, 64)
    assert encoding.config == TINY_GRID.for_image(48, 64)
    image = decode(encoding)
    assert image.shape == (48, 64, 3) and image.dtype == np.float32


def test_default_autoencoder_encodes_a_non_square_frame():
    torch.manual_seed(0)
    encoding = HashAutoencoder().encode(torch.rand(3, 96, 128))
    assert encoding.tables.shape == (12, 4096, 2)
    assert encoding.config.finest_resolution == 128
    assert decode(encoding).shape == (96, 128, 3)


@pytest.mark.parametrize("bad", [np.zeros((16, 16, 3), np.uint8), np.zeros((40, 40, 4), np.uint8),
                                 "image.png"])
def test_encode_rejects_bad_images(tiny_model, bad):
    with pytest.raises(ValueError):
        tiny_model.encode(bad)


def test_finetune_improves_psnr_and_leaves_the_model_alone(tiny_model):
    image = photo()
    target = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    encoding = tiny_model.encode(image)
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    tuned = tiny_model.finetune(encoding, image, steps=15, level_dropout=0.0)
    gain = psnr(tuned.decode_grid().detach(), target) - psnr(encoding.decode_grid().detach(),
                                                             target)
    assert gain > 0.3
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())
    assert all(p.requires_grad for p in tiny_model.decoder.parameters())
    assert tuned.decoder is not tiny_model.decoder


def test_finetune_rejects_another_image_size(tiny_model):
    encoding = tiny_model.encode(photo())
    with pytest.raises(ValueError, match="encoding is for"):
        tiny_model.finetune(encoding, photo(40, 64), steps=1)


@pytest.mark.parametrize("fp16", [False, True])
def test_save_load_round_trip(tiny_model, tmp_path, fp16):
    path = tmp_path / "ae.pt"
    tiny_model.save(path, fp16=fp16)
    loaded = HashAutoencoder.load(path)
    assert loaded.config == tiny_model.config and not loaded.training
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected, got = tiny_model.eval()(image), loaded(image)
    torch.testing.assert_close(got, expected, atol=2e-2 if fp16 else 1e-6, rtol=0)


def test_load_rejects_corrupt_and_foreign_files(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="not a readable"):
        HashAutoencoder.load(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="not a hashflow"):
        HashAutoencoder.load(foreign)
    with pytest.raises(FileNotFoundError):
        HashAutoencoder.load(tmp_path / "missing.pt")


def test_load_rejects_mismatched_weights(tiny_model, tmp_path):
    path = tmp_path / "ae.pt"
    tiny_model.save(path)
    payload = torch.load(path, weights_only=True)
    payload["config"]["decoder_hidden"] = 32
    torch.save(payload, path)
    with pytest.raises(ValueError, match="usable"):
        HashAutoencoder.load(path)


def test_load_pretrained(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(autoencoder_module, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="hashflow.train"):
        load_pretrained(order=2)
    tiny_model.save(tmp_path / "hash_ae_o2.pt", fp16=True)
    assert load_pretrained(order=2, device="cpu").config == TINY
    tiny_model.save(tmp_path / "hash_ae_o1.pt")
    with pytest.raises(ValueError, match="order-2"):
        load_pretrained(order=1)
