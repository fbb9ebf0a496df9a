"""Tests for hash-autoencoder training: data, schedule, checkpoints, resume, export, refusal."""

from __future__ import annotations

import math

import pytest
import torch

from hashflow.autoencoder import AutoencoderConfig, HashAutoencoder
from hashflow.grid import HashGridConfig
from hashflow.models.hash_head import HashHeadConfig
from hashflow.models.mit import MiTConfig
from hashflow.train import (CropDataset, TrainConfig, export_weights, list_images, lr_factor,
                            main, train)


TINY = AutoencoderConfig(grid=HashGridConfig(levels=4, log2_table_size=8, base_resolution=8),
                         mit=MiTConfig(hidden_sizes=(8, 16, 16, 16), num_heads=(1, 1, 1, 1)),
                         head=HashHeadConfig(embed_dim=16, vertex_hidden=8), decoder_hidden=16)


def tiny_run(image_dir, out, **overrides) -> TrainConfig:
    settings = dict(images=str(image_dir), out=str(out), size=64, steps=3, batch_size=2,
                    warmup_steps=2, checkpoint_every=2, progress=False, seed=3, model=TINY)
    settings.update(overrides)
    return TrainConfig(**settings)


def load(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_train_writes_a_checkpoint_and_resume_continues(image_dir, tmp_path):
    out = tmp_path / "ckpt.pt"
    train(tiny_run(image_dir, out))
    first = load(out)
    assert first["step"] == 3 and first["format"] == "hashflow.train"
    assert set(first) >= {"state_dict", "optimizer", "rng", "config", "train_config"}
    train(tiny_run(image_dir, out, steps=5, resume=True))
    assert load(out)["step"] == 5


def test_resume_reproduces_an_uninterrupted_run(image_dir, tmp_path):
    straight, sliced = tmp_path / "straight.pt", tmp_path / "sliced.pt"
    train(tiny_run(image_dir, straight, steps=4))
    train(tiny_run(image_dir, sliced, steps=4, stop_after=2))
    assert load(sliced)["step"] == 2
    train(tiny_run(image_dir, sliced, steps=4, resume=True))
    expected, got = load(straight)["state_dict"], load(sliced)["state_dict"]
    assert all(torch.allclose(expected[k], got[k], atol=1e-6) for k in expected)


def test_resume_refuses_another_model(image_dir, tmp_path):
    out = tmp_path / "ckpt.pt"
    train(tiny_run(image_dir, out, steps=1))
    with pytest.raises(ValueError, match="model config"):
        train(tiny_run(image_dir, out, steps=2, order=1, resume=True))


@pytest.mark.parametrize("folder", ["coco/val2017", "data/val2017/sub"])
def test_refuses_val2017(tmp_path, folder):
    images = tmp_path / folder
    images.mkdir(parents=True)
    with pytest.raises(ValueError, match="val2017"):
        train(TrainConfig(images=str(images), out=str(tmp_path / "x.pt"), steps=1))
    with pytest.raises(ValueError, match="val2017"):
        main(["--images", str(images), "--out", str(tmp_path / "x.pt"), "--steps", "1"])


def test_refuses_empty_folder_and_bad_config(tmp_path):
    with pytest.raises(ValueError, match="no images"):
        train(TrainConfig(images=str(tmp_path), out=str(tmp_path / "x.pt")))
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(images=str(tmp_path), loss="huber")


def test_export_weights_is_small_and_loads(image_dir, tmp_path):
    ckpt, weights = tmp_path / "ckpt.pt", tmp_path / "hash_ae_o2.pt"
    train(tiny_run(image_dir, ckpt, steps=1))
    assert main(["--export", str(ckpt), "--out", str(weights)]) == 0
    assert weights.stat().st_size < ckpt.stat().st_size / 2
    exported, trained = HashAutoencoder.load(weights), HashAutoencoder.load(ckpt)
    assert exported.config == trained.config
    assert load(weights)["state_dict"]["decoder.layers.0.weight"].dtype == torch.float16
    export_weights(ckpt, weights, fp16=False)
    assert load(weights)["state_dict"]["decoder.layers.0.weight"].dtype == torch.float32


def test_cli_trains(image_dir, tmp_path):
    out = tmp_path / "cli.pt"
    argv = ["--images", str(image_dir), "--out", str(out), "--size", "64", "--steps", "1",
            "--batch-size", "1", "--loss", "mse", "--threads", "1", "--no-progress"]
    assert main(argv) == 0
    settings = load(out)["train_config"]
    assert settings["loss"] == "mse" and settings["threads"] == 1


def test_crop_dataset_is_seeded_and_covers_every_file(image_dir):
    files = list_images(image_dir)
    assert len(files) == 3
    dataset = CropDataset(files, size=80, seed=1)
    crop = dataset[4]
    assert crop.shape == (3, 80, 80) and 0 <= crop.min() and crop.max() <= 1
    assert torch.equal(crop, CropDataset(files, size=80, seed=1)[4])
    assert {dataset.file_for(i) for i in range(3)} == set(files)
    assert {dataset.file_for(i) for i in range(3, 6)} == set(files)


def test_lr_schedule():
    assert lr_factor(0, 10, 100, 0.01) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100, 0.01) == pytest.approx(1.0)
    assert lr_factor(10, 10, 100, 0.01) == pytest.approx(1.0)
    halfway = 0.01 + 0.99 * 0.5 * (1 + math.cos(0.5 * math.pi))
    assert lr_factor(55, 10, 100, 0.01) == pytest.approx(halfway)
    assert lr_factor(100, 10, 100, 0.01) == pytest.approx(0.01)
