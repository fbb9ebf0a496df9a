"""Source photographs for synthetic pairs: a COCO folder, the shared data, or scikit-image.

Lookup order of :func:`list_sources`: an explicit ``coco_dir``; else ``coco/val2017`` under the
data root (``HASHFLOW_DATA``); else the colour photographs bundled with scikit-image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hashflow.images import load_image
from hashflow.paths import data_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp")
# Colour photographs shipped inside scikit-image (no download), each at least 300 px a side.
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle",
                  "immunohistochemistry")


@dataclass(frozen=True)
class ImageSource:
    """One source image, loaded on demand."""

    name: str
    """Identifier stored with the pairs: a file name, or ``skimage:NAME``."""
    path: Path | None = None
    """Image file, or None for a scikit-image photograph."""

    def load(self) -> np.ndarray:
        """Returns: (H, W, 3) uint8 RGB."""
        if self.path is not None:
            return load_image(self.path)
        return _load_skimage(self.name.removeprefix("skimage:"))


def list_sources(coco_dir: str | os.PathLike | None = None) -> list[ImageSource]:
    """Source images, sorted by name.

    Args:
        coco_dir: a folder of images (e.g. COCO val2017); None to use the data root's
            ``coco/val2017`` when present, else scikit-image's photographs.
    Raises:
        ValueError when ``coco_dir`` is given but is not a folder or holds no image.
    """
    if coco_dir is not None:
        return _folder_sources(Path(coco_dir))
    shared = data_path("coco", "val2017")
    if shared is not None:
        sources = _folder_sources(shared)
        if sources:
            return sources
    return skimage_sources()


def skimage_sources() -> list[ImageSource]:
    """The bundled scikit-image colour photographs (astronaut, coffee, chelsea, ...)."""
    return [ImageSource(f"skimage:{name}") for name in SKIMAGE_PHOTOS]


def _folder_sources(folder: Path) -> list[ImageSource]:
    if not folder.is_dir():
        raise ValueError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return [ImageSource(p.name, p) for p in files]


def _load_skimage(name: str) -> np.ndarray:
    if name not in SKIMAGE_PHOTOS:
        raise ValueError(f"unknown scikit-image photograph {name!r}; expected one of "
                         f"{', '.join(SKIMAGE_PHOTOS)}")
    import skimage.data

    image = getattr(skimage.data, name)()
    if isinstance(image, tuple):  # stereo_motorcycle returns (left, right, disparity)
        image = image[0]
    return np.ascontiguousarray(image[..., :3], dtype=np.uint8)
