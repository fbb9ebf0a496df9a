import numpy as np
import pytest
import torch

import hashflow
from hashflow.images import psnr, to_image_tensor


@pytest.fixture(scope="module")
def fitted(natural_crop):
    return hashflow.fit_image(natural_crop, steps=300, level_dropout=0.0, seed=0)


def test_fit_image_reaches_30db(fitted, natural_crop):
    decoded = hashflow.decode(fitted)
    assert decoded.shape == (64, 64, 3) and decoded.dtype == np.float32
    value = psnr(torch.from_numpy(decoded), torch.from_numpy(natural_crop / 255.0))
    assert value >= 30.0


def test_decode_points_matches_full_image(fitted):
    points = np.array([[3.0, 5.0], [40.0, 17.0]], dtype=np.float32)
    colours = hashflow.decode(fitted, points)
    image = hashflow.decode(fitted)
    assert colours.shape == (2, 3)
    assert np.allclose(colours[0], image[5, 3], atol=1e-5)
    assert np.allclose(colours[1], image[17, 40], atol=1e-5)


def test_save_load_round_trip(fitted, tmp_path):
    path = tmp_path / "enc.h5"
    fitted.save(path)
    loaded = hashflow.HashEncoding.load(path)
    assert loaded.config == fitted.config and loaded.image_size == fitted.image_size
    assert np.array_equal(hashflow.decode(loaded), hashflow.decode(fitted))


def test_corrupt_and_foreign_files_raise(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(ValueError, match="not a readable hashflow encoding"):
        hashflow.HashEncoding.load(junk)
    import h5py
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = [1, 2]
    with pytest.raises(ValueError, match="not a hashflow encoding"):
        hashflow.HashEncoding.load(foreign)
    with pytest.raises(FileNotFoundError):
        hashflow.HashEncoding.load(tmp_path / "missing.h5")


def test_frozen_decoder_only_fits_tables(fitted, natural_crop):
    before = [p.clone() for p in fitted.decoder.parameters()]
    enc = hashflow.fit_image(natural_crop[::-1].copy(), steps=20, decoder=fitted.decoder)
    assert enc.decoder is fitted.decoder
    assert all(torch.equal(a, b) for a, b in zip(before, fitted.decoder.parameters()))


def test_level_dropout_makes_coarse_decodes_meaningful(natural_crop):
    enc = hashflow.fit_image(natural_crop, steps=150, level_dropout=0.5, seed=1)
    target = to_image_tensor(natural_crop)
    blurred = torch.from_numpy(hashflow.decode(enc, levels=3)).permute(2, 0, 1)
    flat = target.mean(dim=(1, 2), keepdim=True).expand_as(target)
    assert psnr(blurred, target) > psnr(flat, target) + 3.0


@pytest.mark.parametrize("bad, match", [
    (np.zeros((64, 64, 4), np.uint8), "shape"),
    (np.zeros((64, 64, 3), np.int32), "dtype"),
    (np.full((64, 64, 3), np.nan, np.float32), "NaN"),
    (np.zeros((0, 0, 3), np.uint8), "at least"),
    (np.zeros((4, 64, 3), np.uint8), "at least"),
    (np.full((16, 16, 3), 3.0, np.float32), r"\[0, 1\]"),
    (torch.zeros(2, 3, 16, 16), "shape"),
    ("image.png", "str"),
])
def test_bad_images_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        to_image_tensor(bad)


def test_accepted_image_forms_agree(natural_crop):
    as_float = to_image_tensor(natural_crop / 255.0)
    as_torch = to_image_tensor(torch.from_numpy(natural_crop).permute(2, 0, 1))
    assert torch.allclose(to_image_tensor(natural_crop), as_float)
    assert torch.allclose(as_float, as_torch)
    gray = to_image_tensor(natural_crop[..., 0])
    assert gray.shape == (3, 64, 64) and torch.equal(gray[0], gray[2])
