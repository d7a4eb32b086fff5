"""The ``reference`` backend: softmax(scale·q·kᵀ)·v written out plainly, step by step.

It is the oracle of every test and the only source of attention weights. It materialises the
(B, Hq, Nq, Nk) score matrix, computes in float32 (float64 for float64 inputs) and casts the
output back to q's dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

from qkv.attention.call import AttentionCall, compute_dtype
from qkv.attention.dropout import full_keep_mask
from qkv.attention.registry import Backend


def position_allowed(call: AttentionCall, rows: Tensor, cols: Tensor) -> Tensor | None:
    """Causal / window constraint for query rows × key cols (bool, True = may attend), or None.

    Query i sits at key position i + offset (bottom-right alignment, as when decoding with a
    cache): causal allows j <= i + offset; window (left, right) allows
    i + offset - left <= j <= i + offset + right.
    """
    if not call.has_position_mask:
        return None
    pos = rows.view(-1, 1) + call.offset  # (Nr, 1)
    cols = cols.view(1, -1)  # (1, Nc)
    allowed = torch.ones(pos.shape[0], cols.shape[1], dtype=torch.bool, device=rows.device)
    if call.causal:
        allowed &= cols <= pos
    if call.window is not None:
        left, right = call.window
        if left is not None:
            allowed &= cols >= pos - left
        if right is not None:
            allowed &= cols <= pos + right
    return allowed


def alibi_bias(
    call: AttentionCall, rows: Tensor, cols: Tensor, dtype: torch.dtype = torch.float32
) -> Tensor:
    """-slope_h · |i + offset - j| of shape (B or 1, Hq, Nr, Nc), computed in ``dtype``.

    The float64 oracle needs the product in float64: slope·distance rounded to float32 is off
    by ~1e-7 relative, far above float64 tolerances.
    """
    assert call.alibi_slopes is not None
    distance = (rows.view(-1, 1) + call.offset - cols.view(1, -1)).abs().to(dtype)
    return -call.alibi_slopes.to(dtype)[:, :, None, None] * distance  # (B|1, Hq, Nr, Nc)


def scores_and_weights(call: AttentionCall) -> tuple[Tensor, Tensor]:
    """Masked scores and softmax probabilities (before dropout), both (B, Hq, Nq, Nk)."""
    dtype = compute_dtype(call.q.dtype)
    batch, q_heads, q_len, head_dim = call.q.shape
    kv_heads, k_len = call.kv_heads, call.k_len
    # Grouped-query: view the query heads as (kv_heads, groups) so k is broadcast, not copied.
    q = call.q.to(dtype).view(batch, kv_heads, call.groups, q_len, head_dim)
    k = call.k.to(dtype).unsqueeze(2)  # (B, Hkv, 1, Nk, D)
    scores = (q @ k.transpose(-1, -2)) * call.scale  # (B, Hkv, G, Nq, Nk)
    scores = scores.reshape(batch, q_heads, q_len, k_len)  # (B, Hq, Nq, Nk)

    if call.softcap is not None:
        scores = call.softcap * torch.tanh(scores / call.softcap)
    rows = torch.arange(q_len, device=scores.device)
    cols = torch.arange(k_len, device=scores.device)
    if call.alibi_slopes is not None:
        scores = scores + alibi_bias(call, rows, cols, dtype)
    if call.mask is not None and call.mask.dtype != torch.bool:
        scores = scores + call.mask.to(dtype)

    allowed = position_allowed(call, rows, cols)
    if call.mask is not None and call.mask.dtype == torch.bool:
        allowed = call.mask if allowed is None else (call.mask & allowed)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))

    # Softmax that maps a row with no allowed key to all zeros (not NaN), with zero gradient.
    row_max = scores.amax(dim=-1, keepdim=True)
    row_max = torch.where(torch.isneginf(row_max), torch.zeros_like(row_max), row_max)
    exp = torch.exp(scores - row_max.detach())
    total = exp.sum(dim=-1, keepdim=True)
    weights = exp / torch.where(total == 0, torch.ones_like(total), total)
    return scores, weights


def apply_dropout(call: AttentionCall, weights: Tensor) -> Tensor:
    if call.dropout_p == 0:
        return weights
    keep = full_keep_mask(call.dropout_seed, call.dropout_p, *weights.shape, weights.device)
    return weights * keep / (1.0 - call.dropout_p)


def reference_attention(call: AttentionCall) -> tuple[Tensor, Tensor | None]:
    """Backend entry point: (out (B, Hq, Nq, Dv) in q's dtype, weights or None)."""
    _, weights = scores_and_weights(call)
    weights = apply_dropout(call, weights)
    batch, q_heads, q_len, k_len = weights.shape
    v = call.v.to(weights.dtype).unsqueeze(2)  # (B, Hkv, 1, Nk, Dv)
    grouped = weights.view(batch, call.kv_heads, call.groups, q_len, k_len)
    out = (grouped @ v).reshape(batch, q_heads, q_len, call.v.shape[-1])  # (B, Hq, Nq, Dv)
    out = out.to(call.q.dtype)
    return out, (weights if call.need_weights else None)


def reference_check(call: AttentionCall) -> str | None:
    """The reference backend serves every call."""
    return None


BACKEND = Backend(
    name="reference",
    forward=reference_attention,
    check=reference_check,
    description="the formula written plainly; O(N²) memory; the oracle and weights source",
)
