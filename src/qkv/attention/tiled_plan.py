"""Block bookkeeping shared by the ``tiled`` forward, backward and weights passes.

A :class:`TilePlan` holds everything about one call that does not change from block to block:
the grouped-query layout, the score modifiers (softcap, ALiBi, masks) reshaped for that
layout, and which key blocks each query block needs. ``scores`` recomputes the modified
score block for any (query rows × key columns) rectangle, the same way in every pass.

Layout: queries are viewed as (B·Hkv, G·bq, D) per query block, so one batched matmul per
block serves all G query heads of a key/value head without copying k or v.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from qkv.attention.call import AttentionCall, compute_dtype
from qkv.attention.dropout import keep_mask
from qkv.attention.reference import position_allowed

# Block sizes measured on a 2-core AMD EPYC (AVX-512), torch 2.13, 8 heads, d=64
# (2026-11-24): large blocks amortise the per-op overhead; G·bq·bk fp32 scores per head
# stay a few MiB.
BLOCK_Q = 256
BLOCK_K = 1024


def rows_cols_slice(t: Tensor, i0: int, i1: int, j0: int, j1: int) -> Tensor:
    """Slice the last two (query, key) dims of a broadcastable tensor; size-1 dims stay."""
    rows = slice(i0, i1) if t.shape[-2] > 1 else slice(None)
    cols = slice(j0, j1) if t.shape[-1] > 1 else slice(None)
    return t[..., rows, cols]


@dataclass(frozen=True, kw_only=True)
class KeyBlock:
    start: int
    stop: int
    needs_position_mask: bool


@dataclass(kw_only=True)
class TilePlan:
    call: AttentionCall
    dtype: torch.dtype  # compute dtype (float32 or float64)
    factor: float  # q is multiplied by this before q·kᵀ: scale, or scale / softcap
    block_q: int
    block_k: int
    neg_slopes: Tensor | None  # (B|1, Hkv, G, 1, 1) = -alibi slopes
    mask: Tensor | None  # (B|1, Hkv|1, G|1, Nq|1, Nk|1), bool or float

    @classmethod
    def build(cls, call: AttentionCall, block_q: int = BLOCK_Q, block_k: int = BLOCK_K) -> TilePlan:
        dtype = compute_dtype(call.q.dtype)
        factor = call.scale if call.softcap is None else call.scale / call.softcap
        hkv, groups = call.kv_heads, call.groups
        neg_slopes = None
        if call.alibi_slopes is not None:
            slopes = call.alibi_slopes.to(dtype)  # (B|1, Hq)
            neg_slopes = -slopes.view(slopes.shape[0], hkv, groups, 1, 1)
        mask = call.mask
        if mask is not None:
            b, h, nq, nk = mask.shape
            # (B|1, Hkv|1, G|1, Nq|1, Nk|1): split the head dim like the queries'
            mask = mask.reshape(b, hkv, groups, nq, nk) if h > 1 else mask.view(b, 1, 1, nq, nk)
        return cls(
            call=call,
            dtype=dtype,
            factor=factor,
            block_q=max(1, min(block_q, call.q_len)),
            block_k=max(1, min(block_k, call.k_len)),
            neg_slopes=neg_slopes,
            mask=mask,
        )

    # ---- layout -------------------------------------------------------------------------
    def grouped(self, t: Tensor) -> Tensor:
        """(B, Hq, N, D) -> (B, Hkv, G, N, D); a view unless ``t`` is not contiguous."""
        b, _, n, d = t.shape
        return t.reshape(b, self.call.kv_heads, self.call.groups, n, d)

    def query_block(self, grouped: Tensor, i0: int, i1: int) -> Tensor:
        """Rows i0:i1 of every query head, (B, Hkv, G, N, D) -> (B·Hkv, G·bq, D) (a copy)."""
        b, hkv, g, _, d = grouped.shape
        return grouped[:, :, :, i0:i1].reshape(b * hkv, g * (i1 - i0), d)

    def query_starts(self) -> range:
        return range(0, self.call.q_len, self.block_q)

    # ---- which keys a query block needs ---------------------------------------------------
    def key_blocks(self, i0: int, i1: int) -> list[KeyBlock]:
        """Key blocks that rows i0:i1 can attend; blocks causal/window remove are skipped."""
        call = self.call
        off = call.offset
        lo, hi = 0, call.k_len
        left, right = call.window if call.window is not None else (None, None)
        if call.causal:
            hi = min(hi, i1 + off)  # last row's last key is (i1 - 1) + off
        if right is not None:
            hi = min(hi, i1 + off + right)
        if left is not None:
            lo = max(lo, i0 + off - left)
        blocks = []
        for j0 in range(lo, hi, self.block_k):
            j1 = min(j0 + self.block_k, hi)
            inside = True  # every (row, key) pair of the block passes causal and window
            if call.causal and j1 - 1 > i0 + off:
                inside = False
            if right is not None and j1 - 1 > i0 + off + right:
                inside = False
            if left is not None and j0 < i1 - 1 + off - left:
                inside = False
            blocks.append(KeyBlock(start=j0, stop=j1, needs_position_mask=not inside))
        return blocks

    # ---- score recomputation ------------------------------------------------------------
    def scores(
        self,
        q_block: Tensor,
        k: Tensor,
        i0: int,
        i1: int,
        block: KeyBlock,
        keep_tanh: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Modified scores of rows i0:i1 × keys block, (B·Hkv, G·bq, bk), and tanh if asked.

        ``q_block`` is (B·Hkv, G·bq, D) already multiplied by ``factor``; ``k`` is
        (B·Hkv, Nk, D). Removed entries are -inf. In place wherever autograd allows.
        """
        call = self.call
        j0, j1 = block.start, block.stop
        s = torch.bmm(q_block, k[:, j0:j1].transpose(1, 2))  # (B·Hkv, G·bq, bk)
        bsz, hkv, groups = call.batch, call.kv_heads, call.groups
        s5 = s.view(bsz, hkv, groups, i1 - i0, j1 - j0)  # (B, Hkv, G, bq, bk)
        tanh = None
        if call.softcap is not None:
            if torch.is_grad_enabled() and s.requires_grad:  # the weights pass: keep autograd
                s = torch.tanh(s) * call.softcap
                s5 = s.view(s5.shape)
            else:
                s.tanh_()
                if keep_tanh:
                    tanh = s.clone()
                s.mul_(call.softcap)
        device = s.device
        rows = torch.arange(i0, i1, device=device)
        cols = torch.arange(j0, j1, device=device)
        if self.neg_slopes is not None:
            distance = (rows.view(-1, 1) + call.offset - cols.view(1, -1)).abs().to(s.dtype)
            s5.addcmul_(self.neg_slopes, distance)
        if self.mask is not None:
            piece = rows_cols_slice(self.mask, i0, i1, j0, j1)
            if piece.dtype == torch.bool:
                s5.masked_fill_(~piece, float("-inf"))
            else:
                s5.add_(piece)
        if block.needs_position_mask:
            allowed = position_allowed(call, rows, cols)  # (bq, bk)
            assert allowed is not None
            s5.masked_fill_(~allowed, float("-inf"))
        return s, tanh

    def keep(self, i0: int, i1: int, block: KeyBlock, device: torch.device) -> Tensor:
        """Dropout keep mask of the block, (B·Hkv, G·bq, bk), bit-equal to ``reference``'s."""
        call = self.call
        idx = lambda a, b: torch.arange(a, b, device=device, dtype=torch.int64)  # noqa: E731
        hkv, groups = call.kv_heads, call.groups
        keep = keep_mask(
            call.dropout_seed,
            call.dropout_p,
            idx(0, call.batch).view(-1, 1, 1, 1, 1),
            idx(0, call.q_heads).view(1, hkv, groups, 1, 1),
            idx(i0, i1).view(1, 1, 1, -1, 1),
            idx(block.start, block.stop).view(1, 1, 1, 1, -1),
        )  # (B, Hkv, G, bq, bk)
        return keep.view(call.batch * hkv, groups * (i1 - i0), block.stop - block.start)
