"""Neural networks of hashflow: the MiT backbone and the hash-table head."""

from hashflow.models.mit import MiTConfig, MixTransformer

__all__ = ["MiTConfig", "MixTransformer"]
