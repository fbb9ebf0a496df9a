"""Tests for the Mix Transformer (MiT-B0) backbone."""

from __future__ import annotations

import pytest
import torch

from hashflow.models.mit import MiTConfig, MixTransformer, drop_path, efficient_attention

B0_PARAMS = 3_319_392
STAGE_NORM_PARAMS = 2 * (32 + 64 + 160 + 256)


@pytest.fixture(scope="module")
def model() -> MixTransformer:
    torch.manual_seed(0)
    return MixTransformer().eval()


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_count_matches_segformer_b0(model):
    assert abs(count(model) - 3.32e6) / 3.32e6 < 0.01
    assert count(model) == B0_PARAMS
    stage_norms = sum(count(stage.norm) for stage in model.stages)
    assert stage_norms == STAGE_NORM_PARAMS


@pytest.mark.parametrize("size", [(256, 256), (96, 160), (90, 131)])
def test_output_shapes(model, size):
    with torch.no_grad():
        features = model(torch.rand(2, 3, *size))
    expected = MiTConfig().output_sizes(*size)
    for feature, width, stride, (h, w) in zip(features, (32, 64, 160, 256), (4, 8, 16, 32),
                                             expected):
        assert feature.shape == (2, width, h, w)
        assert (h, w) == (-(-size[0] // stride), -(-size[1] // stride))


def test_gradients_reach_the_input_conv(model):
    model.train()
    features = model(torch.rand(1, 3, 64, 64))
    sum(f.mean() for f in features).backward()
    grad = model.stages[0].patch_embed.proj.weight.grad
    model.zero_grad()
    model.eval()
    assert grad is not None and grad.abs().sum() > 0


@pytest.mark.parametrize("shape", [(3, 64, 64), (1, 1, 64, 64), (1, 4, 64, 64)])
def test_bad_input_raises(model, shape):
    with pytest.raises(ValueError, match="expects"):
        model(torch.rand(shape))


def test_efficient_attention_matches_hand_computation():
    torch.manual_seed(1)
    query, key, value = torch.randn(2, 5, 6), torch.randn(2, 3, 6), torch.randn(2, 3, 6)
    out = efficient_attention(query, key, value, num_heads=2)
    for head in range(2):
        cols = slice(3 * head, 3 * head + 3)
        weights = torch.softmax(query[..., cols] @ key[..., cols].transpose(1, 2) / 3 ** 0.5, -1)
        torch.testing.assert_close(out[..., cols], weights @ value[..., cols])


def test_drop_path_identity_in_eval_and_unbiased_in_training():
    x = torch.ones(20000, 4)
    assert torch.equal(drop_path(x, 0.3, training=False), x)
    dropped = drop_path(x, 0.3, training=True)
    survivors = dropped[dropped[:, 0] > 0, 0]
    torch.testing.assert_close(survivors, torch.full_like(survivors, 1 / 0.7))
    assert abs(dropped.mean().item() - 1.0) < 0.05
    assert torch.equal(dropped[:, 0:1].expand(-1, 4), dropped)


def test_block_drop_rates_grow_linearly():
    rates = MiTConfig(drop_path_rate=0.1).block_drop_rates()
    flat = [rate for stage in rates for rate in stage]
    assert [len(stage) for stage in rates] == [2, 2, 2, 2]
    assert flat[0] == 0.0 and flat[-1] == pytest.approx(0.1)


@pytest.mark.parametrize("kwargs", [dict(num_heads=(1, 2, 3, 8)), dict(depths=(2, 2, 2)),
                                    dict(drop_path_rate=1.0)])
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError, match="MiTConfig"):
        MiTConfig(**kwargs)
