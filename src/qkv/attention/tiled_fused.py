"""The ``tiled`` backend's CPU fast path: PyTorch's fused FlashAttention kernel, tile by tile.

PyTorch's CPU FlashAttention kernel (``aten::_scaled_dot_product_flash_attention_for_cpu``)
computes softmax(q·kᵀ·scale + bias)·v blockwise in registers and returns the log-sum-exp
(LSE) per row; its backward takes the output and the LSE and recomputes the rest. Given the
whole causal problem with an N×N bias it would do twice the work (no block skipping) and
need the N×N bias in memory. So for a causal call this module cuts the problem into tiles
that the kernel serves with an O(N) bias, and merges them exactly:

- per query block of rows [i0, i1), with ``off = Nk − Nq`` (row i sees keys j ≤ i + off):
  - the diagonal tile, keys [i0 + off, i1 + off): the kernel's ``is_causal`` (top-left
    aligned, which on a square tile is the bottom-right alignment qkv uses), plus the exact
    ALiBi bias −slope·|i + off − j| of the tile, (B|1, Hq, bq, bq);
  - the past tile, keys [0, i0 + off), every key allowed: ALiBi there is
    −slope·(i + off − j) = slope·(j − i0 − off) − slope·(i − i0), a column vector plus a
    row constant. The kernel gets the column vector (B|1, Hq, 1, i0 + off); the row
    constant c_i = slope·(i − i0) ∈ [0, slope·bq) does not change that tile's softmax and is
    taken out of its LSE afterwards;
  - the two (output, LSE) pairs merge as out = Σ_t out_t·exp(lse_t − lse).
  Keys above the diagonal are never touched.
- backward, per tile: the kernel's backward given the merged output and the merged LSE
  (plus c_i for the past tile) yields exactly that tile's share of dq and its keys' dk, dv.

Extra memory is O(N·d) plus one bq×bq bias per block; no N×N tensor exists. This path serves
calls with ``causal=True``, Nk ≥ Nq, Dv = Dk, optional ALiBi, and no mask, window, softcap
or dropout, on CPU; every other call goes through ``tiled_kernels``' own loops (which also stay the
oracle for this path in the tests).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from qkv.attention.call import AttentionCall
from qkv.attention.tiled_plan import compute_dtype

# Rows per query block: Nq/16 clamped to [256, 1024]. Measured on a 2-core AMD EPYC (torch
# 2.13, 8 heads, d=64, ALiBi, fwd+bwd, 2026-11-24): at N=4k, 256 rows 0.40 s, 1024 rows
# 0.44 s; at N=16k, 256 rows 6.8 s, 1024 rows 5.5 s (fewer kernel calls and dk/dv
# accumulations). The diagonal tile's ALiBi bias is Hq·bq² numbers (32 MiB at 8 heads, 1024).
MIN_BLOCK_Q = 256
MAX_BLOCK_Q = 1024


def fused_reason(call: AttentionCall) -> str | None:
    """Why the fused-kernel path cannot serve ``call``, or None if it can."""
    if call.q.device.type != "cpu":
        return "the fused path uses PyTorch's CPU FlashAttention kernel"
    if not call.causal:
        return "the fused path tiles causal calls only"
    if call.mask is not None or call.window is not None:
        return "a mask or window needs the generic loops"
    if call.softcap is not None or call.dropout_p > 0:
        return "softcap and dropout are not in PyTorch's kernel"
    if call.need_weights:
        return "attention weights come from the generic loops"
    if call.v.shape[-1] != call.q.shape[-1]:
        return "PyTorch's kernel needs v's head dim equal to q's and k's"
    if call.k_len < call.q_len:
        return "Nq > Nk leaves rows with no key; the generic loops handle them"
    if not hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
        return "this PyTorch build has no CPU FlashAttention kernel"
    return None


def _biases(
    slopes: Tensor | None, i0: int, i1: int, off: int, dtype: torch.dtype
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """(diagonal tile bias (S, Hq, bq, bq), past tile column bias (S, Hq, 1, i0 + off),
    row constants c (S, Hq, bq)) for ALiBi ``slopes`` (S, Hq); all None without ALiBi."""
    if slopes is None:
        return None, None, None
    s = slopes.to(dtype)[:, :, None, None]  # (S, Hq, 1, 1)
    device = slopes.device
    rows = torch.arange(i1 - i0, device=device, dtype=dtype)  # i − i0
    diagonal = -(rows.view(-1, 1) - rows.view(1, -1)).abs() * s  # (S, Hq, bq, bq)
    past = None
    if i0 + off > 0:
        cols = torch.arange(-(i0 + off), 0, device=device, dtype=dtype)  # j − i0 − off
        past = cols.view(1, 1, 1, -1) * s  # (S, Hq, 1, i0 + off)
    return diagonal, past, rows.view(1, 1, -1) * s[..., 0]


class _FusedTiled(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, q: Tensor, k: Tensor, v: Tensor, call: AttentionCall) -> Tensor:
        dtype = compute_dtype(q.dtype)
        qc, kc, vc = q.to(dtype), k.to(dtype), v.to(dtype)
        out, lse = _forward(call, qc, kc, vc)
        ctx.call = call
        ctx.save_for_backward(q, k, v, out, lse)  # out in the compute dtype, lse (B, Hq, Nq)
        return out.to(q.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        q, k, v, out, lse = ctx.saved_tensors
        dtype = out.dtype
        dq, dk, dv = _backward(ctx.call, q.to(dtype), k.to(dtype), v.to(dtype), out, lse, grad_out)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None


def block_rows(q_len: int) -> int:
    """Rows per query block for ``q_len`` queries: a power of two near q_len / 16."""
    target = max(1, q_len // 16)
    return min(MAX_BLOCK_Q, max(MIN_BLOCK_Q, 1 << (target.bit_length() - 1)))


def _blocks(call: AttentionCall) -> list[tuple[int, int]]:
    """(i0, i1) of every query block."""
    size = block_rows(call.q_len)
    return [(i0, min(i0 + size, call.q_len)) for i0 in range(0, call.q_len, size)]


def _forward(call: AttentionCall, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """(out (B, Hq, Nq, Dv), lse (B, Hq, Nq)) in the compute dtype."""
    kernel = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    off = call.offset
    out = q.new_empty((*q.shape[:3], v.shape[-1]))
    lse = q.new_empty(q.shape[:3])
    for i0, i1 in _blocks(call):
        qb = q[:, :, i0:i1]  # (B, Hq, bq, D)
        diag_bias, past_bias, shift = _biases(call.alibi_slopes, i0, i1, off, q.dtype)
        j0, j1 = i0 + off, i1 + off
        o_d, l_d = kernel(
            qb, k[:, :, j0:j1], v[:, :, j0:j1], 0.0, True, attn_mask=diag_bias, scale=call.scale
        )
        if j0 == 0:
            out[:, :, i0:i1], lse[:, :, i0:i1] = o_d, l_d
            continue
        o_p, l_p = kernel(
            qb, k[:, :, :j0], v[:, :, :j0], 0.0, False, attn_mask=past_bias, scale=call.scale
        )
        if shift is not None:
            l_p = l_p - shift  # the past tile's true LSE
        both = torch.logaddexp(l_d, l_p)  # (B, Hq, bq)
        w_d = (l_d - both).exp_().unsqueeze(-1)
        w_p = (l_p - both).exp_().unsqueeze(-1)
        torch.addcmul(o_d * w_d, o_p, w_p, out=out[:, :, i0:i1])
        lse[:, :, i0:i1] = both
    return out, lse


def _backward(
    call: AttentionCall, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, grad: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    kernel = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward
    off = call.offset
    grad = grad.to(q.dtype)
    dq = torch.empty_like(q)
    dk = torch.zeros_like(k)
    dv = torch.zeros_like(v)
    for i0, i1 in _blocks(call):
        qb, gb, ob, lb = q[:, :, i0:i1], grad[:, :, i0:i1], out[:, :, i0:i1], lse[:, :, i0:i1]
        diag_bias, past_bias, shift = _biases(call.alibi_slopes, i0, i1, off, q.dtype)
        j0, j1 = i0 + off, i1 + off
        dq_d, dk_d, dv_d = kernel(
            gb, qb, k[:, :, j0:j1], v[:, :, j0:j1], ob, lb, 0.0, True,
            attn_mask=diag_bias, scale=call.scale,
        )  # fmt: skip
        dk[:, :, j0:j1] += dk_d
        dv[:, :, j0:j1] += dv_d
        if j0 > 0:
            shifted = lb if shift is None else lb + shift
            dq_p, dk_p, dv_p = kernel(
                gb, qb, k[:, :, :j0], v[:, :, :j0], ob, shifted, 0.0, False,
                attn_mask=past_bias, scale=call.scale,
            )  # fmt: skip
            dq_d += dq_p
            dk[:, :, :j0] += dk_p
            dv[:, :, :j0] += dv_p
        dq[:, :, i0:i1] = dq_d
    return dq, dk, dv


def fused_attention(call: AttentionCall) -> Tensor:
    """out (B, Hq, Nq, Dv) in q's dtype; requires ``fused_reason(call) is None``."""
    return _FusedTiled.apply(call.q, call.k, call.v, call)
