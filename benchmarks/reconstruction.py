"""Reconstruction benchmark script: paper Table 1 (encoder / fine-tuned / per-image tables),
Figure 5 (one shared decoder for many images) and Table 4 (translation invariance).

Usage: python benchmarks/reconstruction.py --quick --out results/reconstruction-quick
       python benchmarks/reconstruction.py --weights-o1 runs/hash_ae_o1.pt \\
           --weights-o2 runs/hash_ae_o2.pt --images 32
"""

import sys

from hashflow.bench.reconstruction import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
