"""Tests for hashflow.datasets: sources, translated pairs, HDF5 pair store, real-flow readers."""

import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from hashflow.datasets import pairstore
from hashflow.datasets.pairstore import PairSet, get_or_make_pairs, load_pairs, save_pairs
from hashflow.datasets.realflow import find_real_sets, read_chairs, read_middlebury
from hashflow.datasets.sources import ImageSource, list_sources, load_image, skimage_sources
from hashflow.datasets.translated import make_translated_pair, make_translated_set
from hashflow.flow_io import write_flow
from hashflow.paths import data_path
from hashflow.warp import warp

REPO = Path(__file__).resolve().parents[1]


def _textured_image(seed=0, shape=(180, 200)):
    rng = np.random.default_rng(seed)
    noise = rng.random((shape[0] // 4, shape[1] // 4, 3)).astype(np.float32)
    return (cv2.resize(noise, shape[::-1], interpolation=cv2.INTER_CUBIC) * 255).clip(0, 255) \
        .astype(np.uint8)


def _smooth_image():
    rng = np.random.default_rng(0)
    noise = rng.random((30, 30, 3)).astype(np.float32)
    return (cv2.resize(noise, (240, 240), interpolation=cv2.INTER_CUBIC) * 255).clip(0, 255) \
        .astype(np.uint8)


def _alignment_error(pair, flow):
    """Mean squared difference between img1 and img2 warped back by a constant flow."""
    size = pair.img1.shape[0]
    dense = np.broadcast_to(np.asarray(flow, np.float32), (size, size, 2)).copy()
    back = warp(pair.img2.astype(np.float32), dense)
    inner = slice(size // 4, size - size // 4)
    return float(((back[inner, inner] - pair.img1[inner, inner]) ** 2).mean())


@pytest.mark.parametrize("seed", [0, 1])
def test_stated_translation_aligns_best_to_subpixel(seed):
    pair = make_translated_pair(_smooth_image(), size=96, radius=20, n_points=4, margin=20,
                                rng=seed)
    assert pair.img1.shape == pair.img2.shape == (96, 96, 3) and pair.img2.dtype == np.uint8
    assert np.hypot(*pair.flow) <= 20
    best = _alignment_error(pair, pair.flow)
    assert best < 0.01 * _alignment_error(pair, np.zeros(2))
    for offset in ([0.05, 0], [-0.05, 0], [0, 0.05], [0, -0.05]):
        assert best < _alignment_error(pair, pair.flow + offset)


def test_points_in_margins_and_shapes():
    pair = make_translated_pair(_textured_image(), size=64, radius=8, n_points=500, margin=12,
                                rng=0)
    assert pair.points.shape == (500, 2) and pair.points.dtype == np.float32
    assert pair.points.min() >= 12 and pair.points.max() <= 64 - 1 - 12
    assert pair.point_flow().shape == (500, 2) and pair.dense_flow().shape == (64, 64, 2)


def test_translations_fill_the_disk():
    rng = np.random.default_rng(0)
    image = _textured_image()
    flows = np.array([make_translated_pair(image, 32, 10, 0, 0, rng).flow for _ in range(300)])
    radii = np.hypot(flows[:, 0], flows[:, 1])
    assert radii.max() <= 10 and radii.max() > 9
    assert 0.4 < np.mean(radii < 10 / np.sqrt(2)) < 0.6  # half the area lies inside R/sqrt(2)


def test_seeded_reproducible_and_small_sources_padded():
    small = _textured_image(shape=(40, 50))
    first = make_translated_pair(small, size=64, radius=30, n_points=5, margin=5, rng=7)
    second = make_translated_pair(small, size=64, radius=30, n_points=5, margin=5, rng=7)
    other = make_translated_pair(small, size=64, radius=30, n_points=5, margin=5, rng=8)
    assert first.seed == 7
    for frame in (first.img1, first.img2):  # reflect padding: no blank rows or columns
        assert frame.max(axis=(1, 2)).min() > 0 and frame.max(axis=(0, 2)).min() > 0
    np.testing.assert_array_equal(first.img2, second.img2)
    np.testing.assert_array_equal(first.points, second.points)
    assert not np.array_equal(first.flow, other.flow)


def test_set_prefix_stable_and_cycles_images():
    images = [_textured_image(0), _textured_image(1)]
    three = make_translated_set(images, 3, seed=4, size=32, radius=5, n_points=2, margin=2)
    two = make_translated_set(images, 2, seed=4, size=32, radius=5, n_points=2, margin=2)
    assert [p.source for p in three] == ["image0", "image1", "image0"]
    np.testing.assert_array_equal(three[1].img2, two[1].img2)
    again = make_translated_pair(images[1], 32, 5, 2, 2, rng=three[1].seed)
    np.testing.assert_array_equal(again.img1, three[1].img1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="uint8"):
        make_translated_pair(np.zeros((100, 100)), size=32, margin=5)
    with pytest.raises(ValueError, match="margin"):
        make_translated_pair(_textured_image(), size=32, margin=20)
    with pytest.raises(ValueError, match="size"):
        make_translated_pair(_textured_image(), size=4)
    with pytest.raises(ValueError, match="empty"):
        make_translated_set([], 2)


def test_skimage_sources_are_colour_photos():
    for source in skimage_sources():
        image = source.load()
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert min(image.shape[:2]) >= 300


def test_folder_sources_and_errors(tmp_path):
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((4, 5, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "a.jpg"), np.full((6, 7, 3), (255, 0, 0), np.uint8))  # BGR blue
    (tmp_path / "notes.txt").write_text("x")
    sources = list_sources(tmp_path)
    assert [s.name for s in sources] == ["a.jpg", "b.png"]
    assert sources[0].load()[0, 0, 2] > 200  # RGB order: blue is last
    with pytest.raises(ValueError, match="no images"):
        list_sources(_empty_dir(tmp_path))
    with pytest.raises(ValueError, match="not found"):
        list_sources(tmp_path / "missing")
    (tmp_path / "bad.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="bad.png"):
        load_image(tmp_path / "bad.png")


def _empty_dir(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def _small_set(n=3):
    pairs = make_translated_set([_textured_image()], n, seed=1, size=32, radius=5, n_points=4,
                                margin=3)
    return PairSet.from_pairs(pairs, {"kind": "test"})


def test_hdf5_round_trip(tmp_path):
    store = _small_set()
    save_pairs(tmp_path / "p.h5", store)
    back = load_pairs(tmp_path / "p.h5")
    for name in ("img1", "img2", "flow", "points", "seeds"):
        np.testing.assert_array_equal(getattr(back, name), getattr(store, name))
    assert back.sources == store.sources and back.params == {"kind": "test"}
    assert back.pair(1).seed == store.pair(1).seed


def test_hdf5_dense_flow_round_trip(tmp_path):
    store = _small_set(2)
    store.flow = np.stack([store.pair(i).dense_flow() for i in range(2)])
    save_pairs(tmp_path / "d.h5", store)
    assert load_pairs(tmp_path / "d.h5").flow.shape == (2, 32, 32, 2)


def test_hdf5_bad_files(tmp_path):
    save_pairs(tmp_path / "p.h5", _small_set())
    data = (tmp_path / "p.h5").read_bytes()
    (tmp_path / "trunc.h5").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.h5").write_text("not hdf5")
    with h5py.File(tmp_path / "foreign.h5", "w") as handle:
        handle["x"] = np.zeros(3)
    with h5py.File(tmp_path / "p.h5", "a") as handle:
        handle.attrs["schema_version"] = 99
    for name, message in [("trunc.h5", "trunc.h5"), ("text.h5", "text.h5"),
                          ("foreign.h5", "not a hashflow pair set"), ("p.h5", "schema_version")]:
        with pytest.raises(ValueError, match=message):
            load_pairs(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        load_pairs(tmp_path / "none.h5")


def test_get_or_make_reuses_and_rebuilds(tmp_path, monkeypatch):
    sources = [ImageSource("skimage:astronaut")]
    settings = dict(sources=sources, size=32, radius=5, n_points=4, margin=3)
    path = tmp_path / "cache.h5"
    first = get_or_make_pairs(path, n_pairs=2, seed=0, **settings)
    calls = []
    monkeypatch.setattr(pairstore, "make_translated_set",
                        lambda *a, **k: calls.append(1) or make_translated_set(*a, **k))
    again = get_or_make_pairs(path, n_pairs=2, seed=0, **settings)
    assert not calls
    np.testing.assert_array_equal(again.img2, first.img2)
    with pytest.warns(UserWarning, match="differ"):
        other = get_or_make_pairs(path, n_pairs=2, seed=1, **settings)
    assert calls and not np.array_equal(other.flow, first.flow)
    path.write_text("corrupt")
    with pytest.warns(UserWarning, match="rebuilding"):
        assert len(get_or_make_pairs(path, n_pairs=2, seed=0, **settings)) == 2


def test_make_pairs_cli(tmp_path):
    out = tmp_path / "cli.h5"
    done = subprocess.run([sys.executable, str(REPO / "datasets" / "make_pairs.py"), "--pairs",
                           "2", "--size", "32", "--radius", "4", "--points", "3", "--margin",
                           "4", "--seed", "5", "--out", str(out)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    store = load_pairs(out)
    assert store.img1.shape == (2, 32, 32, 3) and store.points.shape == (2, 3, 2)
    assert store.params["seed"] == 5 and store.params["radius"] == 4.0


def _shared_flow_root():
    root = data_path("flow")
    if root is None:
        pytest.skip("shared flow data not found (set HASHFLOW_DATA to a folder with flow/)")
    return root


def test_find_real_sets_on_shared_data():
    sets = find_real_sets(_shared_flow_root())
    assert {"middlebury/RubberWhale", "chairs", "fixtures"} <= set(sets)
    assert len(sets["chairs"]) == 9 and len(sets["fixtures"]) == 1


def test_real_samples_are_consistent():
    root = _shared_flow_root()
    for flow_set in find_real_sets(root).values():
        sample = next(iter(flow_set.samples()))
        assert sample.img1.dtype == np.uint8 and sample.img1.shape[2] == 3
        assert sample.flow.shape == (*sample.img1.shape[:2], 2) and sample.valid.dtype == bool
        # the ground truth aligns the frames far better than no motion at all
        back = warp(sample.img2.astype(np.float32), sample.flow)
        aligned = np.abs(back - sample.img1)[sample.valid].mean()
        assert aligned < 0.6 * np.abs(sample.img2.astype(np.float32) - sample.img1).mean()


def test_middlebury_unknowns():
    root = _shared_flow_root()
    sample = next(read_middlebury(root / "middlebury"))
    assert sample.name == "RubberWhale" and 0.9 < sample.valid.mean() < 1


def test_synthetic_chairs_and_missing_partner(tmp_path):
    image = np.zeros((6, 8, 3), np.uint8)
    for name in ("00001_img1.ppm", "00001_img2.ppm"):
        cv2.imwrite(str(tmp_path / name), image)
    write_flow(tmp_path / "00001_flow.flo", np.ones((6, 8, 2), np.float32))
    sample = next(read_chairs(tmp_path))
    assert sample.name == "00001" and sample.flow.shape == (6, 8, 2) and sample.valid.all()
    (tmp_path / "00001_img2.ppm").unlink()
    with pytest.raises(FileNotFoundError, match="00001_img2.ppm"):
        read_chairs(tmp_path)


def test_synthetic_sintel_and_kitti_layouts(tmp_path):
    image = np.zeros((6, 8, 3), np.uint8)
    for index in (1, 2):
        (tmp_path / "s/training/clean/alley").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / f"s/training/clean/alley/frame_{index:04d}.png"), image)
    write_flow(tmp_path / "s/training/flow/alley/frame_0001.flo", np.zeros((6, 8, 2)))
    (tmp_path / "k/training/image_2").mkdir(parents=True)
    for suffix in ("10", "11"):
        cv2.imwrite(str(tmp_path / f"k/training/image_2/000000_{suffix}.png"), image)
    write_flow(tmp_path / "k/training/flow_occ/000000_10.png", np.full((6, 8, 2), 1.5))
    sets = find_real_sets(tmp_path)
    assert set(sets) == {"s/clean", "k/occ"}
    assert next(sets["s/clean"].samples()).name == "alley/frame_0001"
    kitti = next(sets["k/occ"].samples())
    assert kitti.name == "000000" and (kitti.flow == 1.5).all()
