"""EPE benchmark: hashflow beside OpenCV baselines on translated pairs (``hashflow bench``)."""

from hashflow.bench.runner import BENCH_PRESETS, BenchConfig, main, run_benchmark

__all__ = ["BENCH_PRESETS", "BenchConfig", "main", "run_benchmark"]
