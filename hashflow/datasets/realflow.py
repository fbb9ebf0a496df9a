"""Readers for real optical-flow benchmarks with ground truth.

Layouts (as distributed):
- Middlebury: ``SCENE/frame10.png``, ``SCENE/frame11.png``, ``SCENE/flow10.flo``.
- FlyingChairs: ``NNNNNNN-img0.ppm``, ``-img1.ppm``, ``-gt.flo`` or the release's
  ``NNNNN_img1.ppm``, ``_img2.ppm``, ``_flow.flo``.
- MPI-Sintel: ``training/{clean,final}/SCENE/frame_XXXX.png`` and
  ``training/flow/SCENE/frame_XXXX.flo``.
- KITTI 2015: ``training/image_2/NNNNNN_10.png``, ``_11.png``, ``training/flow_occ/NNNNNN_10.png``
  (or ``flow_noc``).
Every reader lists the whole set first (missing partner files raise at once), then yields
samples lazily.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from hashflow.datasets.sources import load_image
from hashflow.flow_io import read_flow
from hashflow.paths import data_path

# (first frame, second frame, flow) name suffixes of the two FlyingChairs namings.
_CHAIRS_NAMINGS = (("-img0.ppm", "-img1.ppm", "-gt.flo"), ("_img1.ppm", "_img2.ppm", "_flow.flo"))
_MAX_SEARCH_DEPTH = 3


@dataclass
class FlowSample:
    """One frame pair with ground-truth flow."""

    name: str
    """Identifier within its set, e.g. ``RubberWhale`` or ``alley_1/frame_0001``."""
    img1: np.ndarray
    """(H, W, 3) uint8 RGB first frame."""
    img2: np.ndarray
    """(H, W, 3) uint8 RGB second frame."""
    flow: np.ndarray
    """(H, W, 2) float32 flow (u, v) in px from img1 to img2, 0 where invalid."""
    valid: np.ndarray
    """(H, W) bool, True where the ground truth is known."""


Triplet = tuple[str, Path, Path, Path]


@dataclass(frozen=True)
class RealFlowSet:
    """A benchmark found on disk."""

    name: str
    """Path relative to the search root, e.g. ``middlebury/RubberWhale`` or ``sintel/clean``."""
    kind: str
    """Reader: middlebury, chairs, sintel-clean, sintel-final, kitti-occ or kitti-noc."""
    root: Path
    """Folder the reader starts from."""

    def samples(self) -> Iterator[FlowSample]:
        """Yield the set's samples in name order."""
        return _load_samples(_LISTERS[self.kind](self.root))

    def __len__(self) -> int:
        return len(_LISTERS[self.kind](self.root))


def read_middlebury(root: str | os.PathLike) -> Iterator[FlowSample]:
    """Middlebury samples from a scene folder or a folder of scenes (frame10/11, flow10.flo)."""
    return _load_samples(_list_middlebury(Path(root)))


def read_chairs(root: str | os.PathLike) -> Iterator[FlowSample]:
    """FlyingChairs samples from a folder of ``*-img0.ppm`` or ``*_img1.ppm`` triplets."""
    return _load_samples(_list_chairs(Path(root)))


def read_sintel(root: str | os.PathLike, render_pass: str = "clean") -> Iterator[FlowSample]:
    """MPI-Sintel training samples; ``render_pass`` is ``clean`` or ``final``."""
    if render_pass not in ("clean", "final"):
        raise ValueError(f"render_pass must be 'clean' or 'final', got {render_pass!r}")
    return _load_samples(_list_sintel(Path(root), render_pass))


def read_kitti(root: str | os.PathLike, occluded: bool = True) -> Iterator[FlowSample]:
    """KITTI 2015 training samples; ``occluded`` picks flow_occ (all pixels) over flow_noc."""
    return _load_samples(_list_kitti(Path(root), "flow_occ" if occluded else "flow_noc"))


def find_real_sets(root: str | os.PathLike | None = None) -> dict[str, RealFlowSet]:
    """Benchmarks found under ``root`` (default: the data root's ``flow/``), by name.

    Searches up to three folder levels deep; returns {} when ``root`` is None and the data
    root has no ``flow/`` folder.
    """
    base = Path(root) if root is not None else data_path("flow")
    if base is None:
        return {}
    if not base.is_dir():
        raise ValueError(f"flow data folder not found: {base}")
    found = {}
    for folder in _walk(base, _MAX_SEARCH_DEPTH):
        for kind in _detect_kinds(folder):
            relative = folder.relative_to(base).as_posix()
            name = relative if relative != "." else folder.name
            if kind.startswith(("sintel", "kitti")):
                name = f"{name}/{kind.split('-')[1]}"
            found[name] = RealFlowSet(name, kind, folder)
    return dict(sorted(found.items()))


def _walk(base: Path, depth: int) -> Iterator[Path]:
    yield base
    if depth > 0:
        for child in sorted(p for p in base.iterdir() if p.is_dir()):
            yield from _walk(child, depth - 1)


def _detect_kinds(folder: Path) -> list[str]:
    kinds = []
    if (folder / "flow10.flo").is_file():
        kinds.append("middlebury")
    if any(next(folder.glob(f"*{first}"), None) for first, _, _ in _CHAIRS_NAMINGS):
        kinds.append("chairs")
    training = folder / "training"
    if (training / "flow").is_dir():
        kinds += [f"sintel-{p}" for p in ("clean", "final") if (training / p).is_dir()]
    if (training / "image_2").is_dir():
        kinds += [f"kitti-{k}" for k in ("occ", "noc") if (training / f"flow_{k}").is_dir()]
    return kinds


def _list_middlebury(root: Path) -> list[Triplet]:
    _require_dir(root)
    scenes = [root] if (root / "flow10.flo").exists() else sorted(
        p for p in root.iterdir() if (p / "flow10.flo").exists())
    return [(s.name, s / "frame10.png", s / "frame11.png", s / "flow10.flo") for s in scenes]


def _list_chairs(root: Path) -> list[Triplet]:
    _require_dir(root)
    for first, second, flow in _CHAIRS_NAMINGS:
        stems = sorted(p.name[: -len(first)] for p in root.glob(f"*{first}"))
        if stems:
            return [(s, root / f"{s}{first}", root / f"{s}{second}", root / f"{s}{flow}")
                    for s in stems]
    return []


def _list_sintel(root: Path, render_pass: str) -> list[Triplet]:
    frames_root, flow_root = root / "training" / render_pass, root / "training" / "flow"
    _require_dir(frames_root)
    triplets = []
    for flow_path in sorted(flow_root.glob("*/frame_*.flo")):
        scene, index = flow_path.parent.name, int(flow_path.stem.split("_")[1])
        frames = frames_root / scene
        triplets.append((f"{scene}/{flow_path.stem}", frames / f"frame_{index:04d}.png",
                         frames / f"frame_{index + 1:04d}.png", flow_path))
    return triplets


def _list_kitti(root: Path, flow_folder: str) -> list[Triplet]:
    flow_root, image_root = root / "training" / flow_folder, root / "training" / "image_2"
    _require_dir(flow_root)
    return [(p.stem.removesuffix("_10"), image_root / p.name,
             image_root / p.name.replace("_10.png", "_11.png"), p)
            for p in sorted(flow_root.glob("*_10.png"))]


def _load_samples(triplets: list[Triplet]) -> Iterator[FlowSample]:
    missing = [str(p) for triplet in triplets for p in triplet[1:] if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} files of the set are missing, e.g. {missing[0]}")
    return (_load_sample(*triplet) for triplet in triplets)


def _load_sample(name: str, first: Path, second: Path, flow_path: Path) -> FlowSample:
    img1, img2 = load_image(first), load_image(second)
    flow, valid = read_flow(flow_path)
    if not img1.shape == img2.shape == (*flow.shape[:2], 3):
        raise ValueError(f"size mismatch in sample {name}: {first} {img1.shape}, "
                         f"{second} {img2.shape}, {flow_path} {flow.shape}")
    return FlowSample(name, img1, img2, flow, valid)


def _require_dir(folder: Path) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {folder}")


_LISTERS: dict[str, Callable[[Path], list[Triplet]]] = {
    "middlebury": _list_middlebury,
    "chairs": _list_chairs,
    "sintel-clean": lambda root: _list_sintel(root, "clean"),
    "sintel-final": lambda root: _list_sintel(root, "final"),
    "kitti-occ": lambda root: _list_kitti(root, "flow_occ"),
    "kitti-noc": lambda root: _list_kitti(root, "flow_noc"),
}
