"""``torch.autograd.Function`` over the fused kernels: saves q, k, v, out and the log-sum-exp,
and recomputes the probabilities blockwise in the backward (O(N) extra memory)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from qkv.attention.triton_kernels.launch import attention_backward, attention_forward
from qkv.attention.triton_kernels.problem import Problem


class FusedAttention(torch.autograd.Function):
    """out = softmax(mods(scale·q·kᵀ))·v with gradients for q, k and v (not for masks/slopes)."""

    @staticmethod
    def forward(ctx: Any, q: Tensor, k: Tensor, v: Tensor, problem: Problem) -> Tensor:
        out, lse = attention_forward(q, k, v, problem)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.problem = problem
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = attention_backward(q, k, v, out, lse, grad_out, ctx.problem)
        return dq, dk, dv, None


def fused_attention(q: Tensor, k: Tensor, v: Tensor, problem: Problem) -> Tensor:
    """Differentiable fused attention; shapes as in :class:`Problem`."""
    return FusedAttention.apply(q, k, v, problem)
