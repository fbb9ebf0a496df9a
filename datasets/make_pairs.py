"""Build a translated-pair set (the paper's protocol) and store it as HDF5.

Example:
    python datasets/make_pairs.py --coco-dir ~/data/coco/val2017 --pairs 100 --out pairs.h5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import hashflow  # noqa: F401
except ImportError:  # running from a source checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hashflow.datasets.pairstore import PairSet, save_pairs, translated_params
from hashflow.datasets.sources import list_sources
from hashflow.datasets.translated import TranslationConfig, make_translated_set


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coco-dir", type=Path, default=None,
                        help="folder of source images (default: $HASHFLOW_DATA/coco/val2017, "
                             "else scikit-image's photographs)")
    parser.add_argument("--pairs", type=int, default=100, help="number of pairs (default 100)")
    parser.add_argument("--size", type=int, default=256, help="frame side, px (default 256)")
    parser.add_argument("--radius", type=float, default=50.0,
                        help="translations uniform in a disk of this radius, px (default 50)")
    parser.add_argument("--points", type=int, default=256, help="query points per pair")
    parser.add_argument("--margin", type=float, default=50.0,
                        help="minimum distance of the points from the border, px (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="output HDF5 file")
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error(f"--pairs must be at least 1, got {args.pairs}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Build the set and write it; returns the exit status."""
    args = parse_args(argv)
    try:
        sources = list_sources(args.coco_dir)
        config = TranslationConfig(args.size, args.radius, args.points, args.margin)
        pairs = make_translated_set(sources, args.pairs, args.seed, **config.as_dict())
        params = translated_params(config, args.pairs, args.seed, sources)
        save_pairs(args.out, PairSet.from_pairs(pairs, params))
    except (ValueError, FileNotFoundError) as err:
        print(f"make_pairs: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(pairs)} pairs ({args.size}x{args.size}, radius {args.radius} px, "
          f"{len(sources)} source images) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
