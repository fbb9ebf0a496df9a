"""Time per translated 256x256 pair (encoding both frames included) and peak memory of a large
dense estimate, for each solver preset (figures, not tests).

    python benchmarks/bench_speed.py --pairs 3 --out results/bench_speed.json
    python benchmarks/bench_speed.py --large 1080x1920 --presets fast   # dense, memory bound

Peak memory is the process's resident-set high-water mark (``ru_maxrss``) after each run:
it only grows, so run the large case alone to read it.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import numpy as np
import torch

from hashflow.atomic import write_text_atomic
from hashflow.bench.common import comma_list
from hashflow.datasets.sources import list_sources
from hashflow.datasets.translated import make_translated_pair
from hashflow.estimator import FlowEstimator


def peak_rss_mb() -> float:
    """Resident-set high-water mark of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_pairs(preset: str, mode: str, order: int, encoder: str, pairs) -> dict:
    """Median seconds per pair (fresh estimator: both frames encoded) and mean EPE at points."""
    seconds, epes = [], []
    for pair in pairs:
        estimator = FlowEstimator(order=order, encoder=encoder, config=preset, device="cpu")
        start = time.perf_counter()
        flow = estimator.estimate(pair.img1, pair.img2, mode=mode, points=pair.points)
        seconds.append(time.perf_counter() - start)
        epes.append(float(np.linalg.norm(flow - pair.flow[None], axis=1).mean()))
    return {"preset": preset, "mode": mode, "order": order, "encoder": encoder,
            "median_s_per_pair": statistics.median(seconds), "mean_epe": float(np.mean(epes))}


def large_dense(preset: str, height: int, width: int) -> dict:
    """Dense pixel-mode flow on a large frame pair: seconds and peak RSS."""
    rng = np.random.default_rng(0)
    base = np.kron(rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3)),
                   np.ones((8, 8, 1))).astype(np.uint8)
    img1, img2 = base[:height, :width], base[3:height + 3, 5:width + 5]
    estimator = FlowEstimator(config=preset, encoder="direct", device="cpu")
    start = time.perf_counter()
    flow = estimator.estimate(img1, img2, mode="pixel")
    return {"preset": preset, "size": [height, width], "seconds": time.perf_counter() - start,
            "peak_rss_mb": peak_rss_mb(), "median_flow": np.median(flow, axis=(0, 1)).tolist()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, help="translated pairs per setting")
    parser.add_argument("--presets", type=comma_list, default=("fast", "default"),
                        help="comma list of presets")
    parser.add_argument("--modes", type=comma_list, default=("patch", "image"),
                        help="comma list of modes")
    parser.add_argument("--encoder", default="direct", help="direct, pretrained or auto")
    parser.add_argument("--large", default=None, help="HxW of a dense memory run, e.g. 1080x1920")
    parser.add_argument("--out", default="results/bench_speed.json", help="JSON file to write")
    args = parser.parse_args(argv)
    results = {"torch_threads": torch.get_num_threads(), "runs": []}
    if args.large:
        height, width = (int(v) for v in args.large.lower().split("x"))
        for preset in args.presets:
            results["runs"].append(large_dense(preset, height, width))
            print(results["runs"][-1], flush=True)
    else:
        sources = list_sources()
        rng = np.random.default_rng(0)
        pairs = [make_translated_pair(sources[i % len(sources)].load(), rng=rng)
                 for i in range(args.pairs)]
        for preset in args.presets:
            for mode in args.modes:
                results["runs"].append(time_pairs(preset, mode, 2, args.encoder, pairs))
                print(results["runs"][-1], flush=True)
    write_text_atomic(args.out, json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
