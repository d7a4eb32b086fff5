"""Benchmarks of the attention backends: the harness behind ``qkv bench`` and
``benchmarks/attention.py`` (and the FLOPs/ceiling helpers ``benchmarks/attention_gpu.py``
shares).

- ``hardware.py``        — attention FLOPs (FlashAttention's convention), the measured matmul
  ceiling on CPU and CUDA, CUDA-event timing, the machine header line.
- ``attention_cases.py`` — one implementation on one problem (:class:`Case`): qkv's backends
  and the peers (PyTorch SDPA, naive, SDPA with an explicit mask, FlexAttention).
- ``measure.py``         — timing a case in this process or in a fresh forked one (peak RSS).
- ``tables.py``          — the full grid and its markdown table, the memory-slope fit.
- ``interleaved.py``     — ``auto`` against SDPA in alternating rounds in one process.
- ``quick.py``           — ``qkv bench --quick``: every backend on every variant, in-process.
- ``run.py``             — the command line of the full benchmark.

Only ``qkv.attention``'s public API is used to run attention; nothing here is imported by
``import qkv``.
"""
