"""The ``flash-tiles`` backend: PyTorch's fused CPU FlashAttention kernel, tile by tile.

PyTorch's CPU FlashAttention kernel (``aten::_scaled_dot_product_flash_attention_for_cpu``)
computes softmax(q·kᵀ·scale + bias)·v blockwise in registers and returns the log-sum-exp
(LSE) per row; its backward takes the output and the LSE and recomputes the rest. Given the
whole causal problem with an N×N bias it would do twice the work (no block skipping) and
need the N×N bias in memory. So for a causal call this module cuts the problem into tiles
that the kernel serves with an O(N) bias, and merges them exactly:

- per query block of rows [i0, i1), with ``off = Nk − Nq`` (row i sees keys j ≤ i + off, and
  j ≥ i + off − left under a sliding window):
  - the diagonal tile, keys [i0 + off, i1 + off): the kernel's ``is_causal`` (top-left
    aligned, which on a square tile is the bottom-right alignment qkv uses), plus the exact
    ALiBi bias −slope·|i + off − j| of the tile, (B|1, Hq, bq, bq);
  - the past tile, keys [0, i0 + off), every key allowed: ALiBi there is
    −slope·(i + off − j) = slope·(j − i0 − off) − slope·(i − i0), a column vector plus a
    row constant. The kernel gets the column vector (B|1, Hq, 1, i0 + off); the row
    constant c_i = slope·(i − i0) ∈ [0, slope·bq) does not change that tile's softmax and is
    taken out of its LSE afterwards;
  - under a sliding window the past tile is the band [i0 + off − left, i0 + off) with an
    explicit bq × left bias (window edge, plus ALiBi), and the diagonal tile gets the window
    edge too when left < bq; rows the band cannot reach get LSE −inf before the merge;
  - the two (output, LSE) pairs merge as out = Σ_t out_t·exp(lse_t − lse).
  Keys above the diagonal are never touched.
- backward, per tile: the kernel's backward given the merged output and the merged LSE
  (plus c_i for the past tile) yields exactly that tile's share of dq and its keys' dk, dv.

Extra memory is O(N·d) plus one bq×bq bias per block; no N×N tensor exists. This path serves
causal calls (``causal=True`` or a window whose right side is 0), with a left window or not,
Nk ≥ Nq, Dv = Dk, optional ALiBi, and no mask, softcap or dropout, on CPU, and refuses every
other call with the reason (:func:`flash_tiles_check`); ``tiled`` serves those with its own
loops, which also stay this backend's oracle in the tests. ``auto`` prefers this backend to
``tiled`` wherever it serves (see ``dispatch.preference``): the same blockwise algorithm, with
each tile in PyTorch's vectorised kernel instead of a few PyTorch ops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from qkv.attention.call import AttentionCall, compute_dtype
from qkv.attention.registry import Backend

# Rows per query block (see block_rows). Measured on a 2-core AMD EPYC (torch 2.13, 8 heads,
# d=64, fwd+bwd, 2026-11-24): ALiBi at N=4k, 256 rows 0.40 s, 1024 rows 0.44 s; at N=16k,
# 256 rows 6.8 s, 1024 rows 5.5 s (fewer kernel calls and dk/dv accumulations). A causal
# window of 512 at N=16k: 128 rows 0.66 s, 256 0.68 s, 1024 0.94 s (the loops: 0.92 s).
# The diagonal tile's ALiBi bias is Hq·bq² numbers (32 MiB at 8 heads and 1024 rows).
MIN_BLOCK_Q = 256
MAX_BLOCK_Q = 1024
MIN_WINDOW_BLOCK_Q = 64


def flash_tiles_check(call: AttentionCall) -> str | None:
    """Why ``flash-tiles`` cannot serve ``call``, or None if it can."""
    if call.q.device.type != "cpu":
        return "PyTorch's CPU FlashAttention kernel runs on CPU tensors only"
    if _left(call) is _NOT_CAUSAL:
        return (
            "it tiles causal calls only (causal=True or a window whose right side is 0); "
            "'tiled' serves the rest"
        )
    if call.mask is not None:
        return "a mask cannot be cut into the kernel's tiles; 'tiled' serves masks"
    if call.softcap is not None or call.dropout_p > 0:
        return "softcap and dropout are not in PyTorch's kernel; 'tiled' serves them"
    if call.need_weights:
        return "attention weights come from 'reference' or 'tiled'"
    if call.alibi_slopes is not None and call.alibi_slopes.requires_grad:
        return "gradients with respect to ALiBi slopes are not computed here; 'tiled' computes them"
    if call.v.shape[-1] != call.q.shape[-1]:
        return "PyTorch's kernel needs v's head dim equal to q's and k's; 'tiled' serves Dv ≠ Dk"
    if call.k_len < call.q_len:
        return "Nq > Nk leaves rows with no key; 'tiled' handles them"
    if not hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
        return "this PyTorch build has no CPU FlashAttention kernel"
    return None


_NOT_CAUSAL = -1


def _left(call: AttentionCall) -> int | None:
    """The window's left reach for a causal-like call (None: unbounded), else _NOT_CAUSAL."""
    left, right = call.window if call.window is not None else (None, None)
    if not call.causal and right != 0:
        return _NOT_CAUSAL
    return left


@dataclass(frozen=True, kw_only=True)
class _Tile:
    """The kernel arguments of one query block's two tiles (keys [j0, j1) and [p0, j0))."""

    j0: int
    j1: int
    diag_bias: Tensor | None  # (S|1, Hq|1, bq, bq)
    p0: int
    past_bias: Tensor | None  # (S|1, Hq|1, bq|1, j0 − p0)
    shift: Tensor | None  # (S, Hq, bq): past LSE = kernel LSE − shift
    empty_from: int | None  # rows i − i0 ≥ this reach no past key


def _tile(call: AttentionCall, i0: int, i1: int, dtype: torch.dtype) -> _Tile:
    off, left = call.offset, _left(call)
    device = call.q.device
    j0 = i0 + off
    p0 = 0 if left is None else max(0, j0 - left)
    rows = torch.arange(i1 - i0, device=device, dtype=dtype)  # i − i0
    slopes = None if call.alibi_slopes is None else call.alibi_slopes.to(dtype)[:, :, None, None]
    diag_bias = None
    if slopes is not None:
        diag_bias = -(rows.view(-1, 1) - rows.view(1, -1)).abs() * slopes  # (S, Hq, bq, bq)
    if left is not None and left < i1 - i0 - 1:  # the window edge crosses the diagonal tile
        edge = torch.zeros(i1 - i0, i1 - i0, device=device, dtype=dtype)
        edge.masked_fill_(rows.view(1, -1) < rows.view(-1, 1) - left, float("-inf"))
        diag_bias = edge if diag_bias is None else diag_bias + edge
    past_bias, shift, empty_from = None, None, None
    if p0 < j0:
        cols = torch.arange(p0 - j0, 0, device=device, dtype=dtype)  # j − i0 − off
        if left is None:
            if slopes is not None:
                past_bias = cols.view(1, 1, 1, -1) * slopes  # (S, Hq, 1, j0 − p0)
                shift = rows.view(1, 1, -1) * slopes[..., 0]  # (S, Hq, bq)
        else:
            # row i reaches key j iff j − i0 − off ≥ (i − i0) − left
            past_bias = torch.zeros(i1 - i0, j0 - p0, device=device, dtype=dtype)
            past_bias.masked_fill_(cols.view(1, -1) < rows.view(-1, 1) - left, float("-inf"))
            if slopes is not None:  # exact: −slope·(i − i0 − (j − i0 − off))
                past_bias = past_bias + (cols.view(1, -1) - rows.view(-1, 1)) * slopes
            empty_from = left
    return _Tile(
        j0=j0, j1=i1 + off, diag_bias=diag_bias, p0=p0, past_bias=past_bias, shift=shift,
        empty_from=empty_from,
    )  # fmt: skip


class _FlashTiles(torch.autograd.Function):
    """(q, k, v) -> out; saves the merged output and LSE for the tile-by-tile backward."""

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


def block_rows(q_len: int, left: int | None = None) -> int:
    """Rows per query block: a power of two near q_len / 16 within [MIN_BLOCK_Q, MAX_BLOCK_Q];
    under a sliding window, near left / 4 (at least MIN_WINDOW_BLOCK_Q) if that is smaller."""
    size = min(MAX_BLOCK_Q, max(MIN_BLOCK_Q, _power_of_two_below(q_len // 16)))
    if left is not None:
        size = min(size, max(MIN_WINDOW_BLOCK_Q, _power_of_two_below(left // 4)))
    return size


def _power_of_two_below(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


def _blocks(call: AttentionCall) -> list[tuple[int, int]]:
    """(i0, i1) of every query block."""
    size = block_rows(call.q_len, _left(call))
    return [(i0, min(i0 + size, call.q_len)) for i0 in range(0, call.q_len, size)]


def _forward(call: AttentionCall, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """(out (B, Hq, Nq, Dv), lse (B, Hq, Nq)) in the compute dtype."""
    kernel = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    out = q.new_empty((*q.shape[:3], v.shape[-1]))
    lse = q.new_empty(q.shape[:3])
    for i0, i1 in _blocks(call):
        t = _tile(call, i0, i1, q.dtype)
        qb = q[:, :, i0:i1]  # (B, Hq, bq, D)
        o_d, l_d = kernel(
            qb, k[:, :, t.j0 : t.j1], v[:, :, t.j0 : t.j1], 0.0, True,
            attn_mask=t.diag_bias, scale=call.scale,
        )  # fmt: skip
        if t.p0 == t.j0:
            out[:, :, i0:i1], lse[:, :, i0:i1] = o_d, l_d
            continue
        o_p, l_p = kernel(
            qb, k[:, :, t.p0 : t.j0], v[:, :, t.p0 : t.j0], 0.0, False,
            attn_mask=t.past_bias, scale=call.scale,
        )  # fmt: skip
        if t.shift is not None:
            l_p = l_p - t.shift  # the past tile's true LSE
        if t.empty_from is not None and t.empty_from < i1 - i0:
            l_p = l_p.clone()
            l_p[:, :, t.empty_from :] = float("-inf")  # the kernel reports 0 for empty rows
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
    grad = grad.to(q.dtype)
    dq = torch.empty_like(q)
    dk = torch.zeros_like(k)
    dv = torch.zeros_like(v)
    for i0, i1 in _blocks(call):
        t = _tile(call, i0, i1, q.dtype)
        qb, gb, ob, lb = q[:, :, i0:i1], grad[:, :, i0:i1], out[:, :, i0:i1], lse[:, :, i0:i1]
        dq_d, dk_d, dv_d = kernel(
            gb, qb, k[:, :, t.j0 : t.j1], v[:, :, t.j0 : t.j1], ob, lb, 0.0, True,
            attn_mask=t.diag_bias, scale=call.scale,
        )  # fmt: skip
        dk[:, :, t.j0 : t.j1] += dk_d
        dv[:, :, t.j0 : t.j1] += dv_d
        if t.p0 < t.j0:
            shifted = lb if t.shift is None else lb + t.shift
            dq_p, dk_p, dv_p = kernel(
                gb, qb, k[:, :, t.p0 : t.j0], v[:, :, t.p0 : t.j0], ob, shifted, 0.0, False,
                attn_mask=t.past_bias, scale=call.scale,
            )  # fmt: skip
            dq_d += dq_p
            dk[:, :, t.p0 : t.j0] += dk_p
            dv[:, :, t.p0 : t.j0] += dv_p
        dq[:, :, i0:i1] = dq_d
    return dq, dk, dv


def flash_tiles_attention(call: AttentionCall) -> tuple[Tensor, Tensor | None]:
    """Backend entry point: (out (B, Hq, Nq, Dv) in q's dtype, None); differentiable.

    Needs ``flash_tiles_check(call) is None``.

    Example::

        >>> out, _ = flash_tiles_attention(validate(q, k, v, causal=True, window=(512, 0)))
    """
    return _FlashTiles.apply(call.q, call.k, call.v, call), None


BACKEND = Backend(
    name="flash-tiles",
    forward=flash_tiles_attention,
    check=flash_tiles_check,
    description="PyTorch's CPU FlashAttention kernel tile by tile (causal, optional ALiBi and "
    "sliding window; blocks above the diagonal skipped); O(N·d) memory, CPU",
)
