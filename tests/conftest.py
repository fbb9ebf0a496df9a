"""Shared fixtures: small natural images and the data folder."""

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


def require_data(*parts: str):
    """Path under the data root, or skip the test saying what is missing."""
    path = data_path(*parts)
    if path is None:
        pytest.skip(f"data not found: $HASHFLOW_DATA/{'/'.join(parts)} "
                    "(set HASHFLOW_DATA or place ../shared/data beside the checkout)")
    return path
