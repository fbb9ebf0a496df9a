"""HashEncoding: an image as hash tables + decoder, with HDF5 save/load and decoding."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from hashflow.atomic import atomic_path
from hashflow.decoder import Decoder
from hashflow.grid import HashGridConfig, sample_grid, sample_points

FORMAT_NAME = "hashflow.HashEncoding"
FORMAT_VERSION = 1


@dataclass
class HashEncoding:
    """One encoded image."""

    tables: torch.Tensor
    """Hash tables (L, T, F)."""
    config: HashGridConfig
    """Grid shape and Lagrange order the tables were made for."""
    image_size: tuple[int, int]
    """(H, W) of the encoded image."""
    decoder: Decoder
    """Per-pixel MLP turning L * F features into RGB."""

    @property
    def device(self) -> torch.device:
        """Device of the tables."""
        return self.tables.device

    def to(self, device) -> "HashEncoding":
        """A copy on ``device`` (the decoder is moved, not copied)."""
        return dataclasses.replace(self, tables=self.tables.to(device),
                                   decoder=self.decoder.to(device))

    def decode_grid(self, levels: int | None = None, offset: torch.Tensor | None = None):
        """Decoded image on the pixel grid (+ offset): (3, H, W) float, unclamped, with grad."""
        features = sample_grid(self.tables[None], self.config, self.image_size, offset, levels)
        return self.decoder.forward_maps(features)[0]

    def decode_points(self, points: torch.Tensor, levels: int | None = None) -> torch.Tensor:
        """Colours (N, 3) at points (N, 2) float (x, y); unclamped, with grad."""
        features = sample_points(self.tables[None], points[None], self.config,
                                 self.image_size, levels)
        return self.decoder(features)[0]

    def save(self, path) -> None:
        """Write the encoding to an HDF5 file, atomically."""
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT_NAME
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["config"] = json.dumps(dataclasses.asdict(self.config))
            f.attrs["image_size"] = list(self.image_size)
            f.attrs["decoder"] = json.dumps(self.decoder.hparams())
            f.create_dataset("tables", data=self.tables.detach().cpu().float().numpy())
            group = f.create_group("decoder_state")
            for name, value in self.decoder.state_dict().items():
                group.create_dataset(name, data=value.detach().cpu().numpy())

    @classmethod
    def load(cls, path, device=None) -> "HashEncoding":
        """Read an encoding written by :meth:`save`; a clear ValueError for anything else."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such encoding file: {path}")
        try:
            with h5py.File(path, "r") as f:
                return _read_encoding(f, path, device)
        except (OSError, KeyError, TypeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path} is not a readable hashflow encoding ({err})") from err

    def nbytes(self) -> int:
        """Size of tables + decoder parameters in bytes (float32)."""
        params = sum(p.numel() for p in self.decoder.parameters())
        return (self.tables.numel() + params) * 4


def _read_encoding(f: h5py.File, path: Path, device) -> HashEncoding:
    if f.attrs.get("format") != FORMAT_NAME:
        raise ValueError(f"{path} is not a hashflow encoding (format={f.attrs.get('format')!r})")
    version = int(f.attrs["format_version"])
    if version != FORMAT_VERSION:
        raise ValueError(f"{path} has encoding format version {version}; "
                         f"this hashflow reads version {FORMAT_VERSION}")
    config = HashGridConfig(**json.loads(f.attrs["config"]))
    decoder = Decoder(**json.loads(f.attrs["decoder"]))
    state = {name: torch.from_numpy(np.asarray(ds)) for name, ds in f["decoder_state"].items()}
    decoder.load_state_dict(state)
    tables = torch.from_numpy(np.asarray(f["tables"]))
    expected = (config.levels, config.table_size, config.features)
    if tuple(tables.shape) != expected:
        raise ValueError(f"{path}: tables have shape {tuple(tables.shape)}, config says {expected}")
    size = tuple(int(v) for v in f.attrs["image_size"])
    return HashEncoding(tables, config, size, decoder).to(device or "cpu")


def decode(encoding: HashEncoding, points=None, levels: int | None = None):
    """Decode an encoding to colours in [0, 1].

    points: None for the whole image, or (N, 2) float (x, y) pixel coordinates
    (numpy or torch). Returns float32 (H, W, 3) (or (N, 3)); numpy when points is None or
    numpy, torch when points is a tensor.
    """
    with torch.no_grad():
        if points is None:
            image = encoding.decode_grid(levels).clamp(0, 1)
            return image.permute(1, 2, 0).cpu().numpy()
        as_numpy = not isinstance(points, torch.Tensor)
        pts = torch.as_tensor(np.asarray(points) if as_numpy else points, dtype=torch.float32)
        if pts.dim() != 2 or pts.shape[1] != 2 or not torch.isfinite(pts).all():
            raise ValueError(f"points must be a finite (N, 2) array of (x, y), "
                             f"got shape {tuple(pts.shape)}")
        colours = encoding.decode_points(pts.to(encoding.device), levels).clamp(0, 1)
        return colours.cpu().numpy() if as_numpy else colours
