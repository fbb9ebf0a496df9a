"""Shared fixtures: small natural images and the data folder."""

import cv2
import numpy as np
import pytest
import torch

from hashflow.paths import data_path


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def natural_crop() -> np.ndarray:
    """A 64x64 uint8 RGB crop of scikit-image's astronaut (a natural photo)."""
    from skimage import data
    return np.ascontiguousarray(data.astronaut()[80:208:2, 200:328:2])


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """A training folder: three 72x90 smooth-plus-noise PNGs and one non-image file."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:72, 0:90]
    for i in range(3):
        smooth = 127 + 100 * np.sin(xs / (5 + i) + ys / 7)[..., None] * np.array([1, 0.5, -0.7])
        noisy = smooth + rng.normal(0, 10, smooth.shape)
        cv2.imwrite(str(folder / f"img{i}.png"), np.clip(noisy, 0, 255).astype(np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return folder


def require_data(*parts: str):
    """Path under the data root, or skip the test saying what is missing."""
    path = data_path(*parts)
    if path is None:
        pytest.skip(f"data not found: $HASHFLOW_DATA/{'/'.join(parts)} "
                    "(set HASHFLOW_DATA or place ../shared/data beside the checkout)")
    return path
