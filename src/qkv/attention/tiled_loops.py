"""The ``tiled`` backend's forward and backward loops (FlashAttention-2 in plain PyTorch ops).

Forward: per query block, an online softmax over the key blocks keeps only the running row
max, row sum and output accumulator; it returns the output and the log-sum-exp (LSE) per row,
both O(N·d). Backward: per query block, the probabilities are recomputed from the scores and
the stored LSE, so no N×N tensor is ever stored.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from qkv.attention.tiled_plan import TilePlan
from qkv.attention.tiled_plan import rows_cols_slice as _rows_cols_slice

_NEG_INF = float("-inf")


# Every exponential is exp2(x·log2 e): PyTorch's CPU exp2 is ~3.5x faster than exp on
# [-60, 0] and has no slow path, while exp is 5-50x slower for arguments below -87 (float32
# underflow) and for -inf, which masking and ALiBi produce in bulk (measured 2026-11-24,
# torch 2.13, AMD EPYC, 2M floats: exp 0.60 ms, 5.5 ms with half -inf, 30 ms underflowing;
# exp2 0.17 / 0.18 / 0.57 ms). The scores stay in natural units, so the rounding is that of
# exp (the tests' error rule against float64 shows no difference); only the extra multiply
# by log2 e is added, and -inf stays -inf.
_LOG2E = math.log2(math.e)


def _exp_(x: Tensor) -> Tensor:
    """In-place exp(x) as exp2(x·log2 e) (see above)."""
    return x.mul_(_LOG2E).exp2_()


def tiled_forward(plan: TilePlan, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """out (B, Hq, Nq, Dv) in the compute dtype, row max and log row sum, both (B, Hq, Nq).

    The log-sum-exp is row max + log row sum; they are kept apart because recomputing
    exp((s - max) - log sum) loses less precision than exp(s - lse) when |lse| is large.
    A row with no allowed key has max +inf and log sum 0, so every recomputed
    probability of it is exp(-inf) = 0.
    """
    call = plan.call
    bsz, hkv, groups = call.batch, call.kv_heads, call.groups
    dv = v.shape[-1]
    qs = plan.grouped(q.to(plan.dtype) * plan.factor)  # (B, Hkv, G, Nq, D)
    kf = k.to(plan.dtype).reshape(bsz * hkv, call.k_len, -1)  # (B·Hkv, Nk, D)
    vf = v.to(plan.dtype).reshape(bsz * hkv, call.k_len, dv)  # (B·Hkv, Nk, Dv)
    out = q.new_zeros((bsz, hkv, groups, call.q_len, dv), dtype=plan.dtype)
    maxes = q.new_full((bsz, hkv, groups, call.q_len), float("inf"), dtype=plan.dtype)
    log_sums = q.new_zeros((bsz, hkv, groups, call.q_len), dtype=plan.dtype)
    dropout = call.dropout_p > 0
    for i0 in plan.query_starts():
        i1 = min(i0 + plan.block_q, call.q_len)
        blocks = plan.key_blocks(i0, i1)
        if not blocks:
            continue  # no key allowed: output 0, lse -inf
        qb = plan.query_block(qs, i0, i1)  # (B·Hkv, G·bq, D)
        rows = qb.shape[1]
        row_max = qb.new_full((bsz * hkv, rows, 1), _NEG_INF)
        row_sum = qb.new_zeros((bsz * hkv, rows, 1))
        acc = qb.new_zeros((bsz * hkv, rows, dv))
        for block in blocks:
            s, _ = plan.scores(qb, kf, i0, i1, block)  # (B·Hkv, G·bq, bk)
            new_max = torch.maximum(row_max, s.amax(dim=-1, keepdim=True))
            # A row with nothing allowed so far keeps max -inf; subtract 0 there, not -inf.
            safe_max = new_max.masked_fill(new_max == _NEG_INF, 0.0)
            p = _exp_(s.sub_(safe_max))  # (B·Hkv, G·bq, bk), unnormalised probabilities
            rescale = (row_max - safe_max).exp_()
            row_sum.mul_(rescale).add_(p.sum(dim=-1, keepdim=True))
            if dropout:
                p.mul_(plan.keep(i0, i1, block, p.device))
            acc.mul_(rescale).baddbmm_(p, vf[:, block.start : block.stop])
            row_max = new_max
        empty = row_sum == 0
        inv = torch.where(empty, 0.0, 1.0 / row_sum)
        if dropout:
            inv = inv / (1.0 - call.dropout_p)
        shape = (bsz, hkv, groups, i1 - i0)
        out[:, :, :, i0:i1] = (acc * inv).view(*shape, dv)
        maxes[:, :, :, i0:i1] = row_max.masked_fill(empty, float("inf")).view(shape)
        log_sums[:, :, :, i0:i1] = row_sum.masked_fill(empty, 1.0).log_().view(shape)
    heads = (bsz, call.q_heads, call.q_len)
    return out.view(*heads, dv), maxes.view(heads), log_sums.view(heads)


def tiled_backward(
    plan: TilePlan,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    maxes: Tensor,
    log_sums: Tensor,
    grad_out: Tensor,
    grad_lse: Tensor | None,
    *,
    want_mask: bool = False,
    want_slopes: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
    """Gradients (dq, dk, dv, d_mask, d_slopes), recomputing probabilities blockwise.

    With P = softmax(S) and dropout keep mask Z (scaled by 1/(1-p)): dV = (P∘Z)ᵀ·dO,
    dP = (dO·Vᵀ)∘Z, dS = P∘(dP − rowsum(dO∘O) + dLSE); through softcap dS·(1 − tanh²);
    dQ = factor·dS·K, dK = dSᵀ·(factor·Q). A float mask and the ALiBi bias are added to S
    after the softcap, so d_mask = dS summed over the mask's broadcast dims and
    d_slope = −Σ dS·|i + offset − j| (``want_mask`` / ``want_slopes``; None otherwise).
    """
    call = plan.call
    bsz, hkv, groups = call.batch, call.kv_heads, call.groups
    dv_dim = v.shape[-1]
    dtype = plan.dtype
    qs = plan.grouped(q.to(dtype) * plan.factor)  # (B, Hkv, G, Nq, D)
    kf = k.to(dtype).reshape(bsz * hkv, call.k_len, -1)  # (B·Hkv, Nk, D)
    vf = v.to(dtype).reshape(bsz * hkv, call.k_len, dv_dim)  # (B·Hkv, Nk, Dv)
    do = plan.grouped(grad_out.to(dtype))  # (B, Hkv, G, Nq, Dv)
    # rowsum(dO∘O) - dLSE: the per-row term of the softmax backward, (B, Hkv, G, Nq)
    delta = plan.grouped((grad_out.to(dtype) * out.to(dtype)).sum(-1, keepdim=True))[..., 0]
    if grad_lse is not None:
        delta = delta - plan.grouped(grad_lse.to(dtype).unsqueeze(-1))[..., 0]
    maxes = plan.grouped(maxes.unsqueeze(-1))[..., 0]  # (B, Hkv, G, Nq)
    log_sums = plan.grouped(log_sums.unsqueeze(-1))[..., 0]
    dq = torch.zeros_like(qs)  # (B, Hkv, G, Nq, D)
    dk = torch.zeros_like(kf)
    dvals = torch.zeros_like(vf)
    dropout = call.dropout_p > 0
    keep_scale = 1.0 / (1.0 - call.dropout_p) if dropout else 1.0
    d_mask = (
        q.new_zeros(plan.mask.shape, dtype=dtype) if want_mask and plan.mask is not None else None
    )
    d_slopes = q.new_zeros((bsz, hkv, groups), dtype=dtype) if want_slopes else None
    for i0 in plan.query_starts():
        i1 = min(i0 + plan.block_q, call.q_len)
        blocks = plan.key_blocks(i0, i1)
        if not blocks:
            continue
        qb = plan.query_block(qs, i0, i1)  # (B·Hkv, G·bq, D)
        dob = plan.query_block(do, i0, i1)  # (B·Hkv, G·bq, Dv)
        rows = qb.shape[1]
        max_b = maxes[:, :, :, i0:i1].reshape(bsz * hkv, rows, 1)
        log_sum_b = log_sums[:, :, :, i0:i1].reshape(bsz * hkv, rows, 1)
        delta_b = delta[:, :, :, i0:i1].reshape(bsz * hkv, rows, 1)
        dq_acc = torch.zeros_like(qb)
        for block in blocks:
            j0, j1 = block.start, block.stop
            s, tanh = plan.scores(qb, kf, i0, i1, block, keep_tanh=call.softcap is not None)
            p = _exp_(s.sub_(max_b).sub_(log_sum_b))  # (B·Hkv, G·bq, bk), normalised
            dp = torch.bmm(dob, vf[:, j0:j1].transpose(1, 2))  # (B·Hkv, G·bq, bk)
            if dropout:
                keep = plan.keep(i0, i1, block, p.device)
                dvals[:, j0:j1].baddbmm_((p * keep).transpose(1, 2), dob, alpha=keep_scale)
                dp.mul_(keep).mul_(keep_scale)
            else:
                dvals[:, j0:j1].baddbmm_(p.transpose(1, 2), dob)
            ds = dp.sub_(delta_b).mul_(p)  # dL/dS
            if d_mask is not None or d_slopes is not None:
                _bias_grads(plan, ds, i0, i1, j0, j1, d_mask, d_slopes)
            if tanh is not None:
                # S = cap·tanh(raw), raw = factor·q·kᵀ with factor = scale/cap
                ds.mul_(tanh.square_().neg_().add_(1.0)).mul_(call.softcap)
            dq_acc.baddbmm_(ds, kf[:, j0:j1])
            dk[:, j0:j1].baddbmm_(ds.transpose(1, 2), qb)
        dq[:, :, :, i0:i1] = dq_acc.view(bsz, hkv, groups, i1 - i0, -1)
    dq = dq.mul_(plan.factor).view(q.shape).to(q.dtype)  # in place: one (B, H, N, D) less
    if d_slopes is not None:
        assert call.alibi_slopes is not None
        slopes = call.alibi_slopes  # (B|1, Hq)
        d_slopes = d_slopes.reshape(bsz, call.q_heads)  # (B, Hkv, G) -> (B, Hq)
        d_slopes = d_slopes.sum(0, keepdim=True) if slopes.shape[0] == 1 else d_slopes
        d_slopes = d_slopes.to(slopes.dtype)
    if d_mask is not None:
        assert call.mask is not None
        d_mask = d_mask.reshape(call.mask.shape).to(call.mask.dtype)  # (B|1, Hq|1, Nq|1, Nk|1)
    return dq, dk.view(k.shape).to(k.dtype), dvals.view(v.shape).to(v.dtype), d_mask, d_slopes


def _bias_grads(
    plan: TilePlan,
    ds: Tensor,
    i0: int,
    i1: int,
    j0: int,
    j1: int,
    d_mask: Tensor | None,
    d_slopes: Tensor | None,
) -> None:
    """Add one block's share of the float mask's and the ALiBi slopes' gradients, in place.

    ``ds`` is dL/dS of rows i0:i1 × keys j0:j1, (B·Hkv, G·bq, bk); ``d_mask`` has the plan's
    mask layout (B|1, Hkv|1, G|1, Nq|1, Nk|1), ``d_slopes`` is (B, Hkv, G).
    """
    call = plan.call
    ds5 = ds.view(call.batch, call.kv_heads, call.groups, i1 - i0, j1 - j0)  # (B, Hkv, G, bq, bk)
    if d_mask is not None:
        target = _rows_cols_slice(d_mask, i0, i1, j0, j1)  # a view: += writes d_mask
        broadcast = [dim for dim in range(5) if target.shape[dim] == 1 and ds5.shape[dim] > 1]
        target += ds5.sum(broadcast, keepdim=True) if broadcast else ds5
    if d_slopes is not None:
        rows = torch.arange(i0, i1, device=ds.device)
        cols = torch.arange(j0, j1, device=ds.device)
        distance = (rows.view(-1, 1) + call.offset - cols.view(1, -1)).abs().to(ds.dtype)
        d_slopes -= (ds5 * distance).sum((-1, -2))  # bias = −slope·distance
