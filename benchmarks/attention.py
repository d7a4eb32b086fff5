"""Attention benchmark: qkv's backends beside PyTorch SDPA, a naive softmax(q·kᵀ)·v, SDPA with
explicit masks and FlexAttention; time, peak memory (fresh subprocess per case) and GFLOP/s
beside the machine's matmul ceiling. One markdown table.

    python benchmarks/attention.py                 # full grid, N = 1k, 4k, 16k (~20 min)
    python benchmarks/attention.py --quick         # N = 512
    python benchmarks/attention.py --only N=4096 --only bf16
    python benchmarks/attention.py --output benchmarks/results/attention-cpu.md

The logic lives in the qkv.bench package (qkv.bench.run) so that ``qkv bench`` shares it.
"""

import sys

from qkv.bench.run import main

if __name__ == "__main__":
    sys.exit(main())
