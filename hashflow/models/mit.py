"""SegFormer's Mix Transformer (MiT) backbone in plain torch, B0 configuration by default.

Our own implementation of the encoder of Xie et al., "SegFormer: Simple and Efficient Design for
Semantic Segmentation with Transformers" (NeurIPS 2021). Four stages, each an overlapping patch
embedding (strided conv + LayerNorm), ``depth`` pre-norm transformer blocks with efficient
(spatially reduced) self-attention and a Mix-FFN, and a final LayerNorm. The output is the four
stage feature maps at strides 4, 8, 16 and 32.

Parameter count: the B0 backbone has 3,319,392 parameters, the number SegFormer reports for
MiT-B0 ("3.3M", the ImageNet classification head excluded). The count *includes* the four
per-stage output LayerNorms (1,024 parameters in all: 2 * (32 + 64 + 160 + 256)); without them it
is 3,318,368. Keys and values are one ``Linear(C, 2C)`` here (SegFormer's ``kv``); HuggingFace
splits it into two ``Linear(C, C)``, which has the same count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MiTConfig", "MixTransformer", "drop_path", "efficient_attention"]


@dataclass(frozen=True)
class MiTConfig:
    """Mix Transformer hyper-parameters (defaults: MiT-B0)."""

    in_channels: int = 3
    """Channels of the input image."""
    hidden_sizes: tuple[int, ...] = (32, 64, 160, 256)
    """Token width of each stage."""
    depths: tuple[int, ...] = (2, 2, 2, 2)
    """Number of transformer blocks per stage."""
    num_heads: tuple[int, ...] = (1, 2, 5, 8)
    """Attention heads per stage (hidden size must divide evenly)."""
    sr_ratios: tuple[int, ...] = (8, 4, 2, 1)
    """Spatial-reduction ratio of keys/values per stage (conv kernel = stride = ratio)."""
    patch_sizes: tuple[int, ...] = (7, 3, 3, 3)
    """Kernel of each stage's overlapping patch-embedding conv (padding = kernel // 2)."""
    strides: tuple[int, ...] = (4, 2, 2, 2)
    """Stride of each stage's patch-embedding conv."""
    mlp_ratio: int = 4
    """Mix-FFN hidden width as a multiple of the stage width."""
    qkv_bias: bool = True
    """Whether the query/key/value projections have a bias."""
    layer_norm_eps: float = 1e-6
    """Epsilon of every LayerNorm."""
    drop_path_rate: float = 0.0
    """Stochastic-depth rate of the last block, linear from 0 at the first (SegFormer: 0.1)."""

    def __post_init__(self) -> None:
        per_stage = (self.hidden_sizes, self.depths, self.num_heads, self.sr_ratios,
                     self.patch_sizes, self.strides)
        if len({len(field) for field in per_stage}) != 1:
            raise ValueError("MiTConfig: all per-stage tuples must have the same length")
        for width, heads in zip(self.hidden_sizes, self.num_heads):
            if width % heads:
                raise ValueError(f"MiTConfig: hidden size {width} not divisible by {heads} heads")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"MiTConfig: drop_path_rate must be in [0, 1), "
                             f"got {self.drop_path_rate}")

    @property
    def num_stages(self) -> int:
        """Number of stages."""
        return len(self.hidden_sizes)

    def block_drop_rates(self) -> list[list[float]]:
        """Stochastic-depth rate of every block, linear in the block index over all stages."""
        total = sum(self.depths)
        rates = [self.drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        starts = [sum(self.depths[:s]) for s in range(self.num_stages)]
        return [rates[start:start + depth] for start, depth in zip(starts, self.depths)]

    def output_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """(h, w) of each stage's feature map for an input of ``height x width``."""
        sizes = []
        for kernel, stride in zip(self.patch_sizes, self.strides):
            height = (height + 2 * (kernel // 2) - kernel) // stride + 1
            width = (width + 2 * (kernel // 2) - kernel) // stride + 1
            sizes.append((height, width))
        return sizes


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability ``rate``.

    x: (B, ...). Returns the same shape, survivors scaled by 1 / (1 - rate) so the mean is kept.
    """
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


def tokens_to_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H*W, C) row-major tokens -> (B, C, H, W) feature map."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, height, width)


def map_to_tokens(feature_map: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) feature map -> (B, H*W, C) row-major tokens."""
    return feature_map.flatten(2).transpose(1, 2)


def efficient_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        num_heads: int) -> torch.Tensor:
    """Multi-head scaled dot-product attention.

    query: (B, N, C); key, value: (B, M, C) (M = N / sr^2 after spatial reduction).
    Returns (B, N, C): softmax(q k^T / sqrt(C / heads)) v per head, heads concatenated.
    """
    batch, _, channels = query.shape

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(batch, -1, num_heads, channels // num_heads).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(query), split(key), split(value))
    return out.transpose(1, 2).reshape(batch, -1, channels)


class OverlapPatchEmbed(nn.Module):
    """Strided conv with overlapping windows (padding = kernel // 2), then LayerNorm."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int,
                 eps: float) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2)
        self.norm = nn.LayerNorm(out_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """x: (B, C_in, H, W). Returns tokens (B, h*w, C_out), h, w."""
        x = self.proj(x)
        height, width = x.shape[-2:]
        return self.norm(map_to_tokens(x)), height, width


class EfficientSelfAttention(nn.Module):
    """Self-attention whose keys/values come from a map shrunk by ``sr_ratio`` per side."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int, qkv_bias: bool,
                 eps: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.sr = nn.Conv2d(dim, dim, sr_ratio, sr_ratio) if sr_ratio > 1 else None
        self.norm = nn.LayerNorm(dim, eps=eps) if sr_ratio > 1 else None

    def reduce(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B, N, C) -> (B, N / sr^2, C) via conv(kernel = stride = sr) + LayerNorm."""
        if self.sr is None:
            return x
        return self.norm(map_to_tokens(self.sr(tokens_to_map(x, height, width))))

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """x: (B, h*w, C) tokens. Returns (B, h*w, C)."""
        key, value = self.kv(self.reduce(x, height, width)).chunk(2, dim=-1)
        return self.proj(efficient_attention(self.q(x), key, value, self.num_heads))


class MixFFN(nn.Module):
    """Linear -> 3x3 depthwise conv -> GELU -> Linear (the conv supplies positional cues)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """x: (B, h*w, C) tokens. Returns (B, h*w, C)."""
        hidden = self.dwconv(tokens_to_map(self.fc1(x), height, width))
        return self.fc2(F.gelu(map_to_tokens(hidden)))


class MiTBlock(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + ffn(norm(x)), both with stochastic depth."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int, config: MiTConfig,
                 drop_rate: float) -> None:
        super().__init__()
        eps = config.layer_norm_eps
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = EfficientSelfAttention(dim, num_heads, sr_ratio, config.qkv_bias, eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MixFFN(dim, dim * config.mlp_ratio)
        self.drop_rate = drop_rate

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """x: (B, h*w, C) tokens. Returns (B, h*w, C)."""
        x = x + drop_path(self.attn(self.norm1(x), height, width), self.drop_rate, self.training)
        return x + drop_path(self.mlp(self.norm2(x), height, width), self.drop_rate, self.training)


class MiTStage(nn.Module):
    """Patch embedding, transformer blocks and a closing LayerNorm."""

    def __init__(self, config: MiTConfig, stage: int) -> None:
        super().__init__()
        dim = config.hidden_sizes[stage]
        in_channels = config.in_channels if stage == 0 else config.hidden_sizes[stage - 1]
        self.patch_embed = OverlapPatchEmbed(in_channels, dim, config.patch_sizes[stage],
                                             config.strides[stage], config.layer_norm_eps)
        self.blocks = nn.ModuleList(
            MiTBlock(dim, config.num_heads[stage], config.sr_ratios[stage], config, rate)
            for rate in config.block_drop_rates()[stage])
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, H, W). Returns (B, C, h, w) with h = floor((H - 1) / stride) + 1."""
        tokens, height, width = self.patch_embed(x)
        for block in self.blocks:
            tokens = block(tokens, height, width)
        return tokens_to_map(self.norm(tokens), height, width)


def init_mit_weights(module: nn.Module) -> None:
    """SegFormer's initialisation: truncated normal (std 0.02) linears, fan-out normal convs."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
        nn.init.normal_(module.weight, std=math.sqrt(2.0 / (fan_out // module.groups)))
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class MixTransformer(nn.Module):
    """SegFormer's hierarchical Mix Transformer encoder (MiT-B0 with the default config)."""

    def __init__(self, config: MiTConfig | None = None) -> None:
        super().__init__()
        self.config = config or MiTConfig()
        self.stages = nn.ModuleList(MiTStage(self.config, s) for s in range(self.config.num_stages))
        self.apply(init_mit_weights)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """image: (B, C_in, H, W) float. Returns the stage maps [(B, C_s, h_s, w_s)] at strides
        4, 8, 16, 32 (h_s = ceil(H / stride) for the default kernels), see ``output_sizes``."""
        if image.ndim != 4 or image.shape[1] != self.config.in_channels:
            raise ValueError(f"MixTransformer expects (B, {self.config.in_channels}, H, W), "
                             f"got {tuple(image.shape)}")
        features = []
        for stage in self.stages:
            image = stage(image)
            features.append(image)
        return features
