"""The ``tiled`` backend: blockwise attention with an online softmax in pure PyTorch.

FlashAttention's algorithm written with torch ops, so it runs on any device and serves every
variant (masks, causal, window, ALiBi, softcap, GQA/MQA, dropout) with O(N·d) extra memory:
the forward stores only the output and the per-row log-sum-exp, the backward recomputes the
probabilities block by block (the loops are in ``tiled_loops``, the per-call block
bookkeeping in ``tiled_plan``). Blocks that causal or window masking removes entirely are
never computed. Attention weights, when asked for, are rebuilt from the stored log-sum-exp
(that output alone is N×N, as requested). The same blockwise idea with PyTorch's CPU
FlashAttention kernel doing each tile is a backend of its own, ``flash-tiles``
(``flash_tiles.py``), which ``auto`` prefers on CPU for the causal calls it serves.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from qkv.attention.call import AttentionCall
from qkv.attention.registry import Backend
from qkv.attention.tiled_loops import tiled_backward, tiled_forward
from qkv.attention.tiled_plan import BLOCK_K, BLOCK_Q, KeyBlock, TilePlan


class _TiledAttention(torch.autograd.Function):
    """(q, k, v, float mask | None, slopes | None) -> (out, lse); the plan carries the options.

    The mask and the slopes are inputs so that autograd asks for their gradients (a learnable
    bias must keep learning); the plan holds the same tensors in its own layout.
    """

    @staticmethod
    def forward(
        ctx: Any,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None,
        slopes: Tensor | None,
        plan: TilePlan,
    ) -> tuple[Tensor, Tensor]:
        out, maxes, log_sums = tiled_forward(plan, q, k, v)  # out in float32/64
        ctx.plan = plan
        # O(N·d): inputs, the unrounded output (the backward's rowsum(dO∘O) stays accurate
        # for bfloat16 inputs) and two numbers per row (max and log sum: the LSE).
        ctx.save_for_backward(q, k, v, out, maxes, log_sums)
        lse = torch.where(torch.isposinf(maxes), float("-inf"), maxes + log_sums)
        out = out.to(q.dtype)
        ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None
        return out, lse

    @staticmethod
    def backward(
        ctx: Any, grad_out: Tensor | None, grad_lse: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        q, k, v, out, maxes, log_sums = ctx.saved_tensors
        if grad_out is None:
            grad_out = torch.zeros(out.shape, dtype=q.dtype, device=out.device)
        want_mask, want_slopes = ctx.needs_input_grad[3], ctx.needs_input_grad[4]
        dq, dk, dv, d_mask, d_slopes = tiled_backward(
            ctx.plan, q, k, v, out, maxes, log_sums, grad_out, grad_lse,
            want_mask=want_mask, want_slopes=want_slopes,
        )  # fmt: skip
        return dq, dk, dv, d_mask, d_slopes, None


def _weights(plan: TilePlan, lse: Tensor) -> Tensor:
    """Attention weights (B, Hq, Nq, Nk) in the compute dtype, after dropout, from the LSE.

    Differentiable: the scores are recomputed with autograd and the LSE carries its gradient
    back through the autograd function.
    """
    call = plan.call
    q = plan.grouped(call.q.to(plan.dtype) * plan.factor)  # (B, Hkv, G, Nq, D)
    qb = plan.query_block(q, 0, call.q_len)  # (B·Hkv, G·Nq, D)
    k = call.k.to(plan.dtype).reshape(call.batch * call.kv_heads, call.k_len, -1)
    whole = KeyBlock(start=0, stop=call.k_len, needs_position_mask=call.has_position_mask)
    scores, _ = plan.scores(qb, k, 0, call.q_len, whole)  # (B·Hkv, G·Nq, Nk)
    lse = plan.query_block(plan.grouped(lse.unsqueeze(-1)), 0, call.q_len)  # (B·Hkv, G·Nq, 1)
    lse = lse.masked_fill(lse == float("-inf"), float("inf"))
    weights = torch.exp(scores - lse)
    if call.dropout_p > 0:
        weights = weights * plan.keep(0, call.q_len, whole, weights.device)
        weights = weights / (1.0 - call.dropout_p)
    return weights.view(call.batch, call.q_heads, call.q_len, call.k_len)


def tiled_attention(
    call: AttentionCall, *, block_q: int = BLOCK_Q, block_k: int = BLOCK_K
) -> tuple[Tensor, Tensor | None]:
    """Backend entry point: (out (B, Hq, Nq, Dv) in q's dtype, weights (B, Hq, Nq, Nk) or None).

    ``block_q`` queries × ``block_k`` keys per block (the tests use small blocks to cross
    many block edges).

    Example::

        >>> out, _ = tiled_attention(validate(q, k, v, causal=True, softcap=30.0))
    """
    plan = TilePlan.build(call, block_q=block_q, block_k=block_k)
    mask = call.mask if call.mask is not None and call.mask.is_floating_point() else None
    out, lse = _TiledAttention.apply(call.q, call.k, call.v, mask, call.alibi_slopes, plan)
    if not call.need_weights:
        return out, None
    return out, _weights(plan, lse)


def tiled_check(call: AttentionCall) -> str | None:
    """``tiled`` serves every call."""
    return None


BACKEND = Backend(
    name="tiled",
    forward=tiled_attention,
    check=tiled_check,
    description="blockwise online softmax (FlashAttention in PyTorch ops): every variant, "
    "O(N·d) memory, any device",
)
