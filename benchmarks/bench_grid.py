"""Hash grid speed and per-image fit quality (figures, not tests).

Prints and writes JSON: points/s of the point path (forward, forward + backward) and ms per
256x256 frame of the full-frame path, for Lagrange orders 1 and 2; fit_image seconds and PSNR
at 256x256 for 100 / 300 / 1000 steps.

    python benchmarks/bench_grid.py --out results/bench_grid.json [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch

from hashflow.atomic import write_text_atomic
from hashflow.datasets.sources import list_sources
from hashflow.decoder import Decoder
from hashflow.fit import fit_image
from hashflow.grid import HashGridConfig, init_tables, sample_grid, sample_points
from hashflow.images import psnr, to_image_tensor

SIZE = 256


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def point_path(order: int, count: int, repeats: int) -> dict:
    """Points/s of sample_points + decoder, forward and forward + backward (tables and points)."""
    config = HashGridConfig(order=order).for_image(SIZE, SIZE)
    tables = init_tables(config, 1, scale=1.0).requires_grad_()
    decoder = Decoder(config.feature_dim)
    points = (torch.rand(1, count, 2) * (SIZE - 1)).requires_grad_()

    def forward():
        with torch.no_grad():
            decoder(sample_points(tables, points, config, (SIZE, SIZE)))

    def forward_backward():
        decoder(sample_points(tables, points, config, (SIZE, SIZE))).sum().backward()

    return {"points": count,
            "forward_points_per_s": count / median_seconds(forward, repeats),
            "forward_backward_points_per_s": count / median_seconds(forward_backward, repeats)}


def full_frame_path(order: int, repeats: int) -> dict:
    """ms per 256x256 frame of sample_grid + decoder, forward and forward + backward."""
    config = HashGridConfig(order=order).for_image(SIZE, SIZE)
    tables = init_tables(config, 1, scale=1.0).requires_grad_()
    decoder = Decoder(config.feature_dim)

    def forward():
        with torch.no_grad():
            decoder.forward_maps(sample_grid(tables, config, (SIZE, SIZE)))

    def forward_backward():
        decoder.forward_maps(sample_grid(tables, config, (SIZE, SIZE))).sum().backward()

    return {"forward_ms": 1e3 * median_seconds(forward, repeats),
            "forward_backward_ms": 1e3 * median_seconds(forward_backward, repeats)}


def fit_quality(image: np.ndarray, steps: int, order: int) -> dict:
    """fit_image seconds and PSNR with default settings (level dropout included)."""
    start = time.perf_counter()
    encoding = fit_image(image, steps=steps, order=order, device="cpu")
    seconds = time.perf_counter() - start
    with torch.no_grad():
        decoded = encoding.decode_grid().clamp(0, 1)
    return {"steps": steps, "order": order, "seconds": seconds,
            "psnr_db": psnr(decoded, to_image_tensor(image))}


def center_crop(image: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Central size x size crop (the photo is upscaled first when smaller)."""
    import cv2
    height, width = image.shape[:2]
    if min(height, width) < size:
        scale = size / min(height, width)
        image = cv2.resize(image, (int(np.ceil(width * scale)), int(np.ceil(height * scale))))
        height, width = image.shape[:2]
    top, left = (height - size) // 2, (width - size) // 2
    return np.ascontiguousarray(image[top:top + size, left:left + size])


def run(quick: bool) -> dict:
    repeats = 3 if quick else 10
    source = list_sources()[0]
    image = center_crop(source.load())
    results = {"machine": platform.platform(), "torch_threads": torch.get_num_threads(),
               "image": source.name, "point_path": {}, "full_frame_path": {}, "fit_image": []}
    for order in (1, 2):
        results["point_path"][f"order{order}"] = point_path(order, 16384, repeats)
        results["full_frame_path"][f"order{order}"] = full_frame_path(order, repeats)
        print(f"order {order}: point path {results['point_path'][f'order{order}']}")
        print(f"order {order}: full frame {results['full_frame_path'][f'order{order}']}")
    for steps in ((100,) if quick else (100, 300, 1000)):
        row = fit_quality(image, steps, order=2)
        results["fit_image"].append(row)
        print(f"fit_image order 2, {steps} steps: {row['seconds']:.1f} s, {row['psnr_db']:.2f} dB")
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/bench_grid.json", help="JSON file to write")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 100 fit steps only")
    args = parser.parse_args(argv)
    results = run(args.quick)
    write_text_atomic(args.out, json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
