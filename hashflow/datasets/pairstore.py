"""Store frame-pair sets in HDF5 (h5py), versioned, written atomically.

File layout (``schema_version`` 1, ``format`` = "hashflow-pairs" as root attributes):
``img1``, ``img2`` (N, H, W, 3) uint8; ``flow`` (N, 2) float64 translations or (N, H, W, 2)
float32 dense flow; ``points`` (N, P, 2) float32 (x, y); ``source`` (N,) UTF-8 names;
``seed`` (N,) int64 (-1 when unknown); root attribute ``params``: JSON of the generation
parameters.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from hashflow.atomic import atomic_path
from hashflow.datasets.sources import ImageSource, list_sources
from hashflow.datasets.translated import TranslatedPair, TranslationConfig, make_translated_set

SCHEMA_VERSION = 1
FORMAT_NAME = "hashflow-pairs"
# Bump when make_translated_pair changes what a seed produces, so that caches are rebuilt.
GENERATOR_VERSION = 2
_DATASETS = ("img1", "img2", "flow", "points", "source", "seed")


@dataclass
class PairSet:
    """A set of N frame pairs with ground truth, as stored on disk."""

    img1: np.ndarray
    """(N, H, W, 3) uint8 RGB first frames."""
    img2: np.ndarray
    """(N, H, W, 3) uint8 RGB second frames."""
    flow: np.ndarray
    """(N, 2) float64 translations (u, v) or (N, H, W, 2) float32 dense flow, px."""
    points: np.ndarray
    """(N, P, 2) float32 query points (x, y) in img1."""
    sources: list[str]
    """Source image name per pair."""
    seeds: np.ndarray
    """(N,) int64 seed per pair, -1 when unknown."""
    params: dict = field(default_factory=dict)
    """Generation parameters (JSON-serialisable)."""

    def __len__(self) -> int:
        return len(self.img1)

    @classmethod
    def from_pairs(cls, pairs: Sequence[TranslatedPair], params: dict | None = None) -> PairSet:
        """Stack translated pairs (all of one frame size and point count) into a set."""
        if not pairs:
            raise ValueError("pairs is empty; expected at least one TranslatedPair")
        return cls(np.stack([p.img1 for p in pairs]), np.stack([p.img2 for p in pairs]),
                   np.stack([p.flow for p in pairs]).astype(np.float64),
                   np.stack([p.points for p in pairs]).astype(np.float32),
                   [p.source for p in pairs],
                   np.array([-1 if p.seed is None else p.seed for p in pairs], np.int64),
                   dict(params or {}))

    def pair(self, index: int) -> TranslatedPair:
        """Pair ``index`` as a TranslatedPair (translation sets only)."""
        if self.flow.ndim != 2:
            raise ValueError("pair() needs a translation set (flow (N, 2)); this set is dense")
        seed = int(self.seeds[index])
        return TranslatedPair(self.img1[index], self.img2[index], self.flow[index],
                              self.points[index], self.sources[index], None if seed < 0 else seed)


def save_pairs(path: str | os.PathLike, pairs: PairSet | Sequence[TranslatedPair],
               params: dict | None = None) -> None:
    """Write a pair set to HDF5 atomically.

    Args:
        pairs: a PairSet, or TranslatedPairs (stacked with ``params``).
        params: generation parameters for a list of pairs (ignored for a PairSet).
    """
    store = pairs if isinstance(pairs, PairSet) else PairSet.from_pairs(pairs, params)
    _check_consistent(store, Path(path))
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        handle.attrs["format"] = FORMAT_NAME
        handle.attrs["schema_version"] = SCHEMA_VERSION
        handle.attrs["params"] = json.dumps(store.params, sort_keys=True)
        for name in ("img1", "img2", "flow", "points"):
            handle.create_dataset(name, data=getattr(store, name), compression="gzip",
                                  compression_opts=1)
        handle.create_dataset("source", data=store.sources, dtype=h5py.string_dtype())
        handle.create_dataset("seed", data=store.seeds.astype(np.int64))


def load_pairs(path: str | os.PathLike) -> PairSet:
    """Read a pair set written by :func:`save_pairs`.

    Raises:
        FileNotFoundError when missing; ValueError (naming the path) for a corrupt,
        truncated or foreign file, a different ``schema_version`` or inconsistent contents.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pair set not found: {path}")
    try:
        with h5py.File(path, "r") as handle:
            _check_header(handle, path)
            store = _read_store(handle)
    except (OSError, KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: corrupt, truncated or unreadable pair set ({err})") from err
    _check_consistent(store, path)
    return store


def translated_params(config: TranslationConfig, n_pairs: int, seed: int,
                      sources: Sequence[ImageSource]) -> dict:
    """The parameters that determine a translated set (compared by :func:`get_or_make_pairs`)."""
    used = [sources[i % len(sources)].name for i in range(n_pairs)] if sources else []
    digest = hashlib.sha256("\n".join(used).encode()).hexdigest()
    return {"kind": "translated", "generator_version": GENERATOR_VERSION, "n_pairs": int(n_pairs),
            "seed": int(seed), "sources_sha256": digest, **config.as_dict()}


def get_or_make_pairs(path: str | os.PathLike, n_pairs: int = 100, seed: int = 0,
                      sources: Sequence[ImageSource] | None = None,
                      coco_dir: str | os.PathLike | None = None, **config) -> PairSet:
    """Load the translated set at ``path`` when its parameters match, else build and store it.

    Args:
        path: HDF5 file to reuse or (re)write.
        n_pairs, seed: as for make_translated_set.
        sources: source images; None: ``list_sources(coco_dir)``.
        **config: ``size``, ``radius``, ``n_points``, ``margin`` (TranslationConfig).
    Returns:
        the PairSet (N = n_pairs). A stored file with other parameters, or an unreadable one,
        is rebuilt with a warning.
    """
    sources = list(sources) if sources is not None else list_sources(coco_dir)
    settings = TranslationConfig(**config)
    params = translated_params(settings, n_pairs, seed, sources)
    stored = _load_if_matching(Path(path), params)
    if stored is not None:
        return stored
    store = PairSet.from_pairs(make_translated_set(sources, n_pairs, seed,
                                                   **settings.as_dict()), params)
    save_pairs(path, store)
    return store


def _load_if_matching(path: Path, params: dict) -> PairSet | None:
    if not path.exists():
        return None
    try:
        stored = load_pairs(path)
    except ValueError as err:
        warnings.warn(f"rebuilding pair set: {err}", stacklevel=3)
        return None
    if stored.params != params:
        warnings.warn(f"rebuilding pair set {path}: stored parameters differ", stacklevel=3)
        return None
    return stored


def _check_header(handle: h5py.File, path: Path) -> None:
    if handle.attrs.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: not a hashflow pair set (format attribute "
                         f"{handle.attrs.get('format')!r}, expected {FORMAT_NAME!r})")
    version = handle.attrs.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(f"{path}: pair set schema_version {version!r}, this hashflow reads "
                         f"{SCHEMA_VERSION}; rebuild the set")
    missing = [name for name in _DATASETS if name not in handle]
    if missing:
        raise ValueError(f"{path}: pair set lacks datasets {missing}")


def _read_store(handle: h5py.File) -> PairSet:
    sources = [s.decode() if isinstance(s, bytes) else str(s) for s in handle["source"][()]]
    return PairSet(handle["img1"][()], handle["img2"][()], handle["flow"][()],
                   handle["points"][()], sources, handle["seed"][()],
                   json.loads(handle.attrs["params"]))


def _check_consistent(store: PairSet, path: Path) -> None:
    count = len(store.img1)
    frames_ok = (store.img1.ndim == 4 and store.img1.shape[-1] == 3
                 and store.img2.shape == store.img1.shape and store.img1.dtype == np.uint8)
    flow_ok = store.flow.shape in ((count, 2), (*store.img1.shape[:3], 2))
    points_ok = store.points.ndim == 3 and store.points.shape[::2] == (count, 2)
    counts_ok = len(store.sources) == count and store.seeds.shape == (count,)
    if not (frames_ok and flow_ok and points_ok and counts_ok):
        raise ValueError(f"{path}: inconsistent pair set: img1 {store.img1.shape}, img2 "
                         f"{store.img2.shape}, flow {store.flow.shape}, points "
                         f"{store.points.shape}, {len(store.sources)} sources, seeds "
                         f"{store.seeds.shape}")
