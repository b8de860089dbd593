"""Throughput of softac's SAC on HalfCheetah-v5 with the published hyperparameters.

    python benchmarks/throughput.py [--env HalfCheetah-v5] [--train-steps 3000]

Prints env steps/s of training after the warm-up, updates/s of the jitted update alone, XLA's FLOP
count per update, the FP32 matmul rate of this machine on the update's shapes and the fraction of
the ceiling reached. Same as `softac bench`; see softac/throughput.py.
"""

import sys

from softac.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
