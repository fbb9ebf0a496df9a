"""Reconstruction benchmark: a tiny run writes every file, resumes without recomputing, reports
why LPIPS is missing; the shift geometry and the shared-decoder batching are checked by hand."""

import dataclasses
import json
import shutil
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from hashflow.autoencoder import AutoencoderConfig, HashAutoencoder
from hashflow.bench import reconstruction as recon
from hashflow.grid import HashGridConfig
from hashflow.models.hash_head import HashHeadConfig
from hashflow.models.mit import MiTConfig

FILES = ("results.json", "results.md", "fig5.png", "records.jsonl")
NO_LPIPS = "LPIPS not computed: test stand-in"


def tiny_model(order: int) -> HashAutoencoder:
    """An untrained autoencoder small enough for CPU tests (4 levels, T = 2**7)."""
    grid = HashGridConfig(levels=4, features=2, log2_table_size=7, base_resolution=4,
                          finest_resolution=32, order=order)
    mit = MiTConfig(hidden_sizes=(8, 16, 16, 16), num_heads=(1, 1, 1, 1))
    torch.manual_seed(order)
    return HashAutoencoder(AutoencoderConfig(grid=grid, mit=mit, head=HashHeadConfig(
        embed_dim=16, vertex_hidden=8), decoder_hidden=16))


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """Two small photos as PNG files."""
    from skimage import data
    folder = tmp_path_factory.mktemp("images")
    for name, image in (("a.png", data.astronaut()), ("b.png", data.coffee())):
        cv2.imwrite(str(folder / name), cv2.cvtColor(image[::8, ::8], cv2.COLOR_RGB2BGR))
    return folder


def tiny_config(out, image_dir, **changes) -> recon.ReconConfig:
    base = recon.ReconConfig(out=str(out), n_images=2, image_dir=str(image_dir), size=32,
                             steps_direct=3, steps_finetune=2, fig5_counts=(1, 2), fig5_steps=2,
                             fig5_size=32, shifts=(4, 8), device="cpu", progress=False)
    return dataclasses.replace(base, **changes)


def run(config, models=None):
    models = models or {1: (tiny_model(1), "tiny-o1"), 2: (tiny_model(2), "tiny-o2")}
    return recon.run_reconstruction(config, models, lambda device: (None, NO_LPIPS))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, image_dir):
    out = tmp_path_factory.mktemp("recon")
    return out, run(tiny_config(out, image_dir))


def test_run_writes_all_files(first_run):
    out, _ = first_run
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
    table = (out / "results.md").read_text()
    assert "(a) encoder prediction" in table and "| 0.3622 |" in table and "| 0.0891 |" in table
    assert "Figure 5" in table and "translation invariance" in table


def test_results_json_keys(first_run):
    out, results = first_run
    assert json.loads((out / "results.json").read_text())["n_images"] == 2
    for key in ("config", "n_images", "source", "device", "weights", "lpips_note", "table1",
                "shift", "fig5", "skipped", "errors", "reference_paper", "wall_seconds",
                "computed_this_run", "compute_seconds", "files"):
        assert key in results, key
    assert all(results["compute_seconds"][k] > 0 for k in ("table1", "shift", "fig5"))
    assert results["errors"] == [] and results["weights"] == {"1": "tiny-o1", "2": "tiny-o2"}
    for order in ("1", "2"):
        entry = results["table1"][order]
        for method in recon.TABLE1_METHODS:
            assert entry[method]["images"] == 2 and np.isfinite(entry[method]["psnr"]), method
            assert 0 < entry[method]["ssim"] <= 1 and entry[method]["seconds_median"] > 0
        assert set(entry["targets"]) >= {"finetune_minus_scratch_db", "direct_gap_met"}
        assert set(results["shift"][order]) == {"all", "4", "8", "images"}
        assert results["shift"][order]["all"]["count"] == 2 * 6
        assert results["fig5"][order]["counts"] == [1, 2]
        assert len(results["fig5"][order]["encoder_psnr"]) == 2
    # 2 images x 2 orders x (5 methods + shift) + 2 orders x (2 counts + encoder)
    assert results["computed_this_run"] == 2 * 2 * 6 + 2 * 3


def test_missing_lpips_reason_is_reported(first_run):
    out, results = first_run
    assert results["lpips_note"] == NO_LPIPS
    assert results["table1"]["1"]["encoder"]["lpips"] is None
    assert NO_LPIPS in (out / "results.md").read_text()


def test_load_lpips_without_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "lpips", None)  # import lpips -> ImportError
    metric, reason = recon.load_lpips("cpu")
    assert metric is None and "lpips is not installed" in reason


def test_resume_skips_finished_work(first_run, image_dir, tmp_path, monkeypatch):
    out = tmp_path / "recon"
    shutil.copytree(first_run[0], out)

    def forbidden(*args, **kwargs):
        raise AssertionError("recomputed a finished unit")
    monkeypatch.setattr(recon, "fit_image", forbidden)
    monkeypatch.setattr(recon, "fit_shared_decoder", forbidden)
    monkeypatch.setattr(HashAutoencoder, "encode", forbidden)
    again = run(tiny_config(out, image_dir))
    assert again["computed_this_run"] == 0 and again["errors"] == []
    assert again["table1"] == first_run[1]["table1"] and again["fig5"] == first_run[1]["fig5"]
    monkeypatch.undo()
    changed = run(tiny_config(out, image_dir, steps_direct=4, shift=False, fig5=False))
    assert changed["computed_this_run"] == 2 * 2  # only column (c), per image and order
    assert changed["shift"] == {} and changed["fig5"] == {}


def test_shift_back_aligns_with_the_base_crop():
    """A perfect autoencoder (decode == input) is exactly translation invariant."""
    class Identity:
        def encode(self, image):
            return SimpleNamespace(decode_grid=lambda: image.clone())
    canvas = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    scorer = recon.Scorer("cpu", lambda device: (None, NO_LPIPS))
    rows = recon.shift_scores(Identity(), canvas, 32, recon.shift_offsets((4, 8)), scorer, "cpu")
    assert [(r["dx"], r["dy"]) for r in rows] == [(4, 0), (0, 4), (4, 4), (8, 0), (0, 8), (8, 8)]
    for row in rows:
        assert row["vs_decoded"]["psnr"] == float("inf") and row["vs_original"]["psnr"] == \
            float("inf")
        assert row["vs_decoded"]["ssim"] == pytest.approx(1.0)


def test_shared_decoder_batches_cover_every_image_equally():
    generator = torch.Generator().manual_seed(0)
    batches = list(recon._batches(5, 2, 3, generator))
    counts = np.bincount(np.concatenate(batches), minlength=5)
    assert counts.tolist() == [3] * 5 and max(len(b) for b in batches) == 2
    targets = torch.rand(3, 3, 32, 32)
    grid = HashGridConfig(levels=4, log2_table_size=7, base_resolution=4, finest_resolution=32)
    assert len(recon.fit_shared_decoder(targets, grid, 2, batch=2, decoder_hidden=8)) == 3


def test_square_crop_is_centred():
    image = np.zeros((60, 100, 3), np.uint8)
    image[:, 20:80] = 255  # the centre 60x60 square is white
    crop = recon.square_crop(image, 30)
    assert crop.shape == (30, 30, 3) and crop.min() == 255


def test_cli_with_a_weights_file(image_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "lpips", None)
    weights = tmp_path / "o2.pt"
    tiny_model(2).save(weights)
    argv = ["--out", str(tmp_path / "out"), "--images", str(image_dir), "--orders", "2",
            "--weights-o2", str(weights), "--size", "32", "--steps-direct", "2",
            "--steps-finetune", "1", "--shifts", "8", "--no-fig5", "--no-progress",
            "--device", "cpu"]
    assert recon.main(argv) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["weights"] == {"2": str(weights)} and results["n_images"] == 2
    assert "not installed" in results["lpips_note"] and not (tmp_path / "out/fig5.png").exists()
    assert "results written" in capsys.readouterr().out


def test_cli_options_and_presets():
    parse = recon.build_parser().parse_args
    config = recon.config_from_args(parse(["--quick", "--images", "3", "--orders", "2"]))
    assert config.n_images == 3 and config.orders == (2,) and config.steps_direct == 200
    config = recon.config_from_args(parse(["--images", "/some/dir", "--all", "--no-shift",
                                           "--finetune-lr", "0.1"]))
    assert config.finetune_lr == 0.1 and config.fit_lr == 2e-2
    assert config.image_dir == "/some/dir" and config.all_images and not config.shift
    assert config.steps_direct == 1000 and config.out == "results/reconstruction"


@pytest.mark.parametrize("argv", [["--orders", "3"], ["--images", "0"], ["--shifts", "300"],
                                  ["--steps-direct", "x"], ["--fit-lr", "0"]])
def test_cli_rejects_bad_options(argv, capsys):
    with pytest.raises(SystemExit):
        recon.main(argv)
    err = capsys.readouterr().err
    assert "expected" in err or "invalid" in err
