"""The ``math`` backend: three PyTorch ops (matmul, fused softmax, matmul) for small problems.

PyTorch's fused CPU attention kernel pays a fixed cost per call and per block that dominates
at the sizes small models train at: measured on a 2-core AMD EPYC (torch 2.13, 2026-11-24),
forward+backward of causal attention at (B, H, N, D) = (48, 4, 64, 32) takes 11.1 ms in
bfloat16 through SDPA and 2.4 ms as matmul → softmax → matmul (4.1 vs 4.4 ms in float32);
at (12, 4, 128, 32) 7.8 vs 2.0 ms (bf16) and 4.3 vs 3.8 ms (fp32). So ``auto`` sends small
CPU problems here (see ``dispatch.preference``).

Unlike ``reference`` (the plain oracle, which computes everything in float32), this path
keeps PyTorch's own precision choices: the products run in the inputs' dtype (fp32
accumulation inside), the softmax in at least float32. It materialises the (B, Hq, Nq, Nk)
scores, so it is meant for small Nq·Nk. It serves calls whose every query row has a key:
no mask or window (which can empty a row), no ALiBi, softcap or dropout, and causal only
with Nk ≥ Nq.
"""

from __future__ import annotations

import torch
from torch import Tensor

from qkv.attention.call import AttentionCall
from qkv.attention.registry import Backend, register_backend


def math_attention(call: AttentionCall) -> tuple[Tensor, Tensor | None]:
    """Backend entry point: (out (B, Hq, Nq, Dv) in q's dtype, None)."""
    q, k, v = call.q, call.k, call.v
    batch, hkv, groups = call.batch, call.kv_heads, call.groups
    q_len, k_len = call.q_len, call.k_len
    qg = q.reshape(batch, hkv, groups * q_len, q.shape[-1])  # (B, Hkv, G·Nq, D)
    scores = torch.matmul(qg, k.transpose(-1, -2))  # (B, Hkv, G·Nq, Nk)
    scores = scores * call.scale
    if call.causal:
        rows = torch.arange(q_len, device=q.device).view(-1, 1) + call.offset
        future = torch.arange(k_len, device=q.device).view(1, -1) > rows  # (Nq, Nk)
        scores = scores.view(batch, hkv, groups, q_len, k_len).masked_fill(future, float("-inf"))
        scores = scores.view(batch, hkv, groups * q_len, k_len)
    if q.dtype in (torch.float32, torch.float64):
        weights = torch.softmax(scores, dim=-1)
    else:
        weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    out = torch.matmul(weights, v)  # (B, Hkv, G·Nq, Dv)
    return out.reshape(batch, call.q_heads, q_len, v.shape[-1]), None


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


register_backend(
    Backend(
        name="math",
        forward=math_attention,
        check=math_check,
        description="matmul → fused softmax → matmul at the inputs' precision; O(N²) memory; "
        "fastest on CPU for small problems",
    )
)
