"""The ``triton`` backend: fused FlashAttention-2-style forward and backward kernels.

Serves fp16 and bf16 (fp32 only when ``triton_support.ALLOW_FP32_TF32`` is set: it then
computes the matmuls in TF32), head dims 16–256 (any size: padded to a power of two inside
the kernel), causal (bottom-right aligned), Nq ≠ Nk, grouped-query / multi-query attention,
sliding windows, ALiBi, soft-capping and bool / additive masks; a bool padding mask of shape
(B, 1, 1, Nk) that keeps a prefix of keys becomes per-sequence key lengths. Packed
variable-length batches go through :func:`qkv.attention.varlen_attention`. The backward is
deterministic (no atomics). Dropout regenerates ``qkv.attention.dropout``'s counter-based mask
inside the kernels (the same mask as ``reference`` and ``tiled``). Refuses, with the reason:
attention weights, gradients with respect to a mask or ALiBi slopes. Where the kernels can run
and which inputs they accept is decided in ``triton_support``.

Runs on CUDA GPUs of compute capability 8.0 or newer (Ampere, Hopper), and on CPU tensors
under the Triton interpreter (``TRITON_INTERPRET=1`` set before Triton is imported), which is
how the tests exercise it without a GPU. Triton is imported only when the backend runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from qkv.attention.call import AttentionCall
from qkv.attention.registry import Backend
from qkv.attention.triton_support import (
    device_refusal,
    dtype_refusal,
    head_dim_refusal,
    key_bounds,
    triton_available,
)

if TYPE_CHECKING:
    from qkv.attention.triton_kernels.problem import Problem


def triton_check(call: AttentionCall) -> str | None:
    """Why the fused kernels cannot serve ``call``, or None when they can."""
    if call.need_weights:
        return "attention weights are never materialised by the fused kernel; use 'reference'"
    reason = (
        device_refusal(call.q.device)
        or dtype_refusal(call.q.dtype)
        or head_dim_refusal(call.q.shape[-1], call.v.shape[-1])
    )
    if reason is not None:
        return reason
    if call.mask is not None and call.mask.requires_grad:
        return "gradients with respect to a float mask are not computed; use 'tiled'"
    if call.alibi_slopes is not None and call.alibi_slopes.requires_grad:
        return "gradients with respect to ALiBi slopes are not computed; use 'tiled'"
    if call.q_len == 0 or call.k_len == 0 or call.batch == 0 or call.q_heads == 0:
        return "empty inputs (a zero-sized dim); use 'reference'"
    return None


def _problem(call: AttentionCall) -> Problem:
    from qkv.attention.triton_kernels.configs import MASK_TILE
    from qkv.attention.triton_kernels.masks import (
        fold_positions,
        prefix_key_lengths,
        tile_lists,
        tile_table,
    )
    from qkv.attention.triton_kernels.problem import Problem

    left, right = key_bounds(call.causal, call.window)
    mask, kind, key_lengths = call.mask, 0, None
    per_query_tile = per_key_tile = None
    if mask is not None:
        lengths = prefix_key_lengths(mask)
        if lengths is not None:
            key_lengths = lengths.expand(call.batch).contiguous()
            mask = None
        else:
            # (B|1, H|1, Tq, Tk): tiles with any allowed score, causal/window bounds included
            active = fold_positions(
                tile_table(mask, MASK_TILE), MASK_TILE, call.q_len, call.k_len, left, right
            )
            per_query_tile = tile_lists(active)
            per_key_tile = tile_lists(active.transpose(2, 3))
            if mask.dtype == torch.bool:
                mask, kind = mask.view(torch.uint8), 1
            else:
                kind = 2
    slopes = call.alibi_slopes
    if slopes is not None:
        slopes = slopes.to(device=call.q.device, dtype=torch.float32)
    return Problem(
        scale=call.scale,
        softcap=call.softcap,
        left=left,
        right=right,
        mask=mask,
        mask_kind=kind,
        tiles_per_query_tile=per_query_tile,
        tiles_per_key_tile=per_key_tile,
        alibi_slopes=slopes,
        dropout_p=call.dropout_p,
        dropout_seed=call.dropout_seed,
        key_lengths=key_lengths,
    )


def triton_attention(call: AttentionCall) -> tuple[Tensor, Tensor | None]:
    """Backend entry point: (out (B, Hq, Nq, Dv) in q's dtype, None)."""
    from qkv.attention.triton_kernels.autograd import fused_attention

    return fused_attention(call.q, call.k, call.v, _problem(call)), None


BACKEND = Backend(
    name="triton",
    forward=triton_attention,
    check=triton_check,
    available=triton_available,
    description=(
        "fused FlashAttention-2-style Triton kernels (fp16/bf16; GQA, causal, window, "
        "ALiBi, softcap, masks, dropout); CUDA sm80+"
    ),
)
