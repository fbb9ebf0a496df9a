"""Tests for stage 1 (decoder over a table bank) and stage 2 (train --decoder / --init)."""

from __future__ import annotations

import pytest
import torch

from hashflow.autoencoder import AutoencoderConfig, HashAutoencoder
from hashflow.decoder_pretrain import (Bank, DecoderPretrainConfig, load_crops, load_decoder,
                                       main, pretrain_decoder)
from hashflow.fit import reconstruction_loss
from hashflow.grid import HashGridConfig
from hashflow.models.hash_head import HashHeadConfig
from hashflow.models.mit import MiTConfig
from hashflow.train import TrainConfig, build_model, train

SIZE = 32
TINY_MODEL = AutoencoderConfig(mit=MiTConfig(hidden_sizes=(8, 16, 16, 16), num_heads=(1, 1, 1, 1)),
                               head=HashHeadConfig(embed_dim=16, vertex_hidden=8))


def stage1(image_dir, out, **overrides) -> DecoderPretrainConfig:
    settings = dict(images=str(image_dir), out=str(out), size=SIZE, bank=3, steps=3,
                    batch_size=2, warmup_steps=1, checkpoint_every=2, progress=False, seed=1)
    settings.update(overrides)
    return DecoderPretrainConfig(**settings)


def load(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_checkpoint_holds_decoder_bank_and_step(image_dir, tmp_path):
    out = pretrain_decoder(stage1(image_dir, tmp_path / "dec.pt"))
    payload = load(out)
    assert payload["step"] == 3 and len(payload["bank"]) == 3 + 4  # 3 tables + 2 layers x 2
    decoder = load_decoder(out, HashGridConfig().for_image(SIZE, SIZE))
    assert decoder.in_features == 24 and decoder.hidden == 64


def test_resume_reproduces_an_uninterrupted_run(image_dir, tmp_path):
    straight, sliced = tmp_path / "straight.pt", tmp_path / "sliced.pt"
    pretrain_decoder(stage1(image_dir, straight, steps=4))
    pretrain_decoder(stage1(image_dir, sliced, steps=2))
    pretrain_decoder(stage1(image_dir, sliced, steps=4, resume=True))
    expected, got = load(straight)["bank"], load(sliced)["bank"]
    assert load(sliced)["step"] == 4
    assert all(torch.allclose(expected[k], got[k], atol=1e-6) for k in expected)


def test_bank_training_lowers_the_loss(image_dir, tmp_path):
    first = pretrain_decoder(stage1(image_dir, tmp_path / "a.pt", steps=1, level_dropout=0.0))
    later = pretrain_decoder(stage1(image_dir, tmp_path / "b.pt", steps=60, level_dropout=0.0))
    grid = HashGridConfig().for_image(SIZE, SIZE)
    crops = load_crops(stage1(image_dir, tmp_path / "unused.pt"))

    def mse(path):
        bank = Bank(grid, 3, 64, seed=0)
        bank.load_state_dict(load(path)["bank"])
        with torch.no_grad():
            return reconstruction_loss(torch.stack(list(bank.tables)), bank.decoder, crops,
                                       grid, None).item()

    assert mse(later) < 0.5 * mse(first)


def test_refuses_val2017_bad_files_and_other_grids(image_dir, tmp_path):
    forbidden = tmp_path / "coco" / "val2017"
    forbidden.mkdir(parents=True)
    with pytest.raises(ValueError, match="val2017"):
        main(["--images", str(forbidden), "--out", str(tmp_path / "x.pt"), "--steps", "1"])
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        load_decoder(corrupt, HashGridConfig())
    with pytest.raises(FileNotFoundError):
        load_decoder(tmp_path / "missing.pt", HashGridConfig())
    out = pretrain_decoder(stage1(image_dir, tmp_path / "dec.pt", steps=1))
    with pytest.raises(ValueError, match="grid"):
        load_decoder(out, HashGridConfig(order=1).for_image(SIZE, SIZE))
    with pytest.raises(ValueError, match="bank"):
        DecoderPretrainConfig(images=str(image_dir), bank=0)


def test_stage2_keeps_the_loaded_decoder_frozen(image_dir, tmp_path):
    decoder_file = pretrain_decoder(stage1(image_dir, tmp_path / "dec.pt", steps=2))
    out = tmp_path / "ae.pt"
    config = TrainConfig(images=str(image_dir), out=str(out), size=SIZE, steps=2, batch_size=2,
                         warmup_steps=1, progress=False, model=TINY_MODEL,
                         decoder=str(decoder_file))
    start = build_model(config)
    train(config)
    trained = HashAutoencoder.load(out)
    stage1_decoder = load_decoder(decoder_file, trained.config.grid)
    for name, value in stage1_decoder.state_dict().items():
        assert torch.equal(trained.decoder.state_dict()[name], value)
    changed = [not torch.equal(value, trained.state_dict()[name])
               for name, value in start.state_dict().items() if name.startswith("head.")]
    assert any(changed)


def test_stage2_init_starts_from_given_weights(image_dir, tmp_path):
    config = TrainConfig(images=str(image_dir), out=str(tmp_path / "a.pt"), size=SIZE, steps=1,
                         batch_size=1, progress=False, model=TINY_MODEL, seed=5)
    train(config)
    started = build_model(TrainConfig(images=str(image_dir), size=SIZE, model=TINY_MODEL,
                                      seed=9, init=config.out))
    saved = HashAutoencoder.load(config.out)
    assert all(torch.equal(v, started.state_dict()[k]) for k, v in saved.state_dict().items())
    with pytest.raises(ValueError, match="another model config"):
        build_model(TrainConfig(images=str(image_dir), size=SIZE, model=TINY_MODEL, order=1,
                                init=config.out))
