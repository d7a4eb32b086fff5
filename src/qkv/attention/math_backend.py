"""The ``math`` backend: three PyTorch ops (matmul, fused softmax, matmul) for small problems.

PyTorch's fused CPU attention kernel pays a fixed cost per call and per block that dominates
at the sizes small models train at: measured on a 2-core AMD EPYC (torch 2.13, 2026-11-24),
forward+backward of causal attention at (B, H, N, D) = (48, 4, 64, 32) takes 11.1 ms in
bfloat16 through SDPA and 4.5 ms as matmul → softmax → matmul in float32 (4.1 vs 4.4 ms for
float32 inputs); at (12, 4, 128, 32) 6.6 vs 3.6 ms (bf16) and 4.3 vs 3.8 ms (fp32). So
``auto`` sends small CPU problems here (see ``dispatch.preference``).

Like ``reference`` it computes in float32 for bf16/fp16 inputs (bf16 scores would round
scores of ~10 to 1/16 before the softmax: a model-level test against transformers' bf16
SDPA showed 3× its error), but without the oracle's generality: no masks, no empty rows. It
materialises the (B, Hq, Nq, Nk) scores, so it is meant for small Nq·Nk. It serves calls
whose every query row has a key: no mask or window (which can empty a row), no ALiBi,
softcap or dropout, and causal only with Nk ≥ Nq.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from qkv.attention.call import AttentionCall, compute_dtype
from qkv.attention.registry import Backend


def math_attention(call: AttentionCall) -> tuple[Tensor, Tensor | None]:
    """Backend entry point: (out (B, Hq, Nq, Dv) in q's dtype, None)."""
    dtype = compute_dtype(call.q.dtype)
    q, k, v = call.q.to(dtype), call.k.to(dtype), call.v.to(dtype)
    batch, hkv, groups = call.batch, call.kv_heads, call.groups
    q_len, k_len = call.q_len, call.k_len
    qg = q.reshape(batch, hkv, groups * q_len, q.shape[-1])  # (B, Hkv, G·Nq, D)
    # In place on the matmul's output (its backward needs only q and k): one pass less.
    scores = torch.matmul(qg, k.transpose(-1, -2)).mul_(call.scale)  # (B, Hkv, G·Nq, Nk)
    if call.causal:
        bias = _causal_bias(q_len, k_len, str(q.device), dtype)  # (Nq, Nk): 0 or -inf
        scores.view(batch, hkv, groups, q_len, k_len).add_(bias)
    weights = torch.softmax(scores, dim=-1)
    out = torch.matmul(weights, v)  # (B, Hkv, G·Nq, Dv)
    return out.reshape(batch, call.q_heads, q_len, v.shape[-1]).to(call.q.dtype), None


@lru_cache(maxsize=32)
def _causal_bias(q_len: int, k_len: int, device: str, dtype: torch.dtype) -> Tensor:
    """0 where key j may be seen from query i (j ≤ i + Nk − Nq), -inf elsewhere."""
    rows = torch.arange(q_len, device=device).view(-1, 1) + (k_len - q_len)
    future = torch.arange(k_len, device=device).view(1, -1) > rows
    return torch.zeros(q_len, k_len, device=device, dtype=dtype).masked_fill_(future, -math.inf)


def math_check(call: AttentionCall) -> str | None:
    """Why ``math`` cannot serve ``call``, or None."""
    if call.need_weights:
        return "attention weights come from the reference backend"
    if call.mask is not None or call.window is not None:
        return "a mask or window can leave a row with no key; reference and tiled handle that"
    if call.alibi_slopes is not None or call.softcap is not None or call.dropout_p > 0:
        return "ALiBi, softcap and dropout are served by reference and tiled"
    if call.causal and call.k_len < call.q_len:
        return "causal with Nq > Nk leaves rows with no key; reference and tiled handle that"
    return None


BACKEND = Backend(
    name="math",
    forward=math_attention,
    check=math_check,
    description="matmul → fused softmax → matmul in float32+; O(N²) memory; fastest on "
    "CPU for small problems",
)
