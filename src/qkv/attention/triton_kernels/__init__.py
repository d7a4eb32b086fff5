"""Fused FlashAttention-2-style attention kernels written in Triton.

The tier stack, bottom to top:

- ``scores.py``   — ``@triton.jit`` helpers shared by every kernel: the score modification
  (scale, soft-capping, ALiBi, masks, causal/window and length bounds) and the matmul wrapper.
- ``forward.py``  — the forward kernel (online softmax, saves the log-sum-exp).
- ``backward.py`` — the backward kernels: ``delta = rowsum(dO·O)``, dK/dV per key block and
  dQ per query block (no atomics, so the backward is deterministic).
- ``configs.py``  — autotune configurations for Ampere/Hopper and the single small
  configuration used under ``TRITON_INTERPRET=1``.
- ``problem.py``  — the host-side description of one launch (options in kernel terms).
- ``masks.py``    — host-side mask analysis: per-tile lists of tiles with any allowed score,
  padding masks recognised as per-sequence key lengths.
- ``launch.py``   — launchers that turn tensors and a problem into kernel launches.
- ``autograd.py`` — the ``torch.autograd.Function`` tying forward and backward together.
- ``offline.py``  — compiles the kernels for sm80/sm90 without a GPU (build checks).

Importing a kernel module imports Triton; ``qkv.attention.triton_backend`` and
``qkv.attention.varlen`` (the packed variable-length API) do so lazily, and the refusals both
share live in ``qkv.attention.triton_support``, outside this folder.
"""
