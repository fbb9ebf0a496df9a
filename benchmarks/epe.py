"""EPE benchmark script: the same as ``hashflow bench``.

Usage: python benchmarks/epe.py --quick --methods dis-medium,phasecorr --out results/bench
"""

import sys

from hashflow.bench.runner import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
