"""Datasets: translated synthetic pairs (the paper's protocol), pair storage, real benchmarks."""

from hashflow.datasets.pairstore import (PairSet, get_or_make_pairs, load_pairs,
                                         save_pairs)
from hashflow.datasets.realflow import (FlowSample, RealFlowSet, find_real_sets, read_chairs,
                                        read_kitti, read_middlebury, read_sintel)
from hashflow.datasets.sources import ImageSource, list_sources, load_image
from hashflow.datasets.translated import (TranslatedPair, TranslationConfig,
                                          make_translated_pair, make_translated_set)

__all__ = [
    "FlowSample", "ImageSource", "PairSet", "RealFlowSet", "TranslatedPair", "TranslationConfig",
    "find_real_sets", "get_or_make_pairs", "list_sources", "load_image", "load_pairs",
    "make_translated_pair", "make_translated_set", "read_chairs", "read_kitti",
    "read_middlebury", "read_sintel", "save_pairs",
]
