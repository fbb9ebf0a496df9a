"""Neural networks of hashflow: the MiT backbone and the hash-table head."""

from hashflow.models.hash_head import HashHead, HashHeadConfig
from hashflow.models.mit import MiTConfig, MixTransformer

__all__ = ["HashHead", "HashHeadConfig", "MiTConfig", "MixTransformer"]
