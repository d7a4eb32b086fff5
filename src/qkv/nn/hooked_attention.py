"""The two attention steps that run only when a hook asks for them.

:func:`attend_through_hooks` computes attention through the reference formula when a
``hook_attn_scores`` or ``hook_pattern`` function is registered, so the scores and the
probabilities exist to be read or replaced; :func:`project_heads` splits the output
projection per head when ``hook_result`` is asked for. Without those hooks the attention
module never calls either, and the fast backend serves the call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from qkv.attention.call import AttentionCall
from qkv.attention.reference import scores_and_weights

if TYPE_CHECKING:
    from qkv.nn.attention import MultiHeadAttention


def _softmax(scores: Tensor) -> Tensor:
    """Softmax over keys that maps a fully masked row to zeros, as the reference does."""
    row_max = scores.amax(dim=-1, keepdim=True)
    row_max = torch.where(torch.isneginf(row_max), torch.zeros_like(row_max), row_max)
    exp = torch.exp(scores - row_max.detach())
    total = exp.sum(dim=-1, keepdim=True)
    return exp / torch.where(total == 0, torch.ones_like(total), total)


def attend_through_hooks(
    module: MultiHeadAttention,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool,
    mask: Tensor | None,
    dropout_p: float,
) -> tuple[Tensor, Tensor]:
    """(out (B, Hq, Tq, D) in q's dtype, weights (B, Hq, Tq, Tk) float32) with the module's
    ``hook_attn_scores`` seeing the masked scores and ``hook_pattern`` the probabilities.

    q (B, Hq, Tq, D), k and v (B, Hkv, Tk, D). A replaced score matrix is re-softmaxed.
    """
    if dropout_p > 0:
        raise ValueError(
            "hook_attn_scores / hook_pattern need attention dropout off; call model.eval() "
            "before hooking the attention pattern"
        )
    call = AttentionCall(
        q=q,
        k=k,
        v=v,
        causal=causal,
        mask=mask,
        scale=module.scale,
        window=module.window,
        softcap=module.softcap,
    )
    scores, weights = scores_and_weights(call)  # (B, Hq, Tq, Tk) each
    if module.hook_attn_scores.active:
        hooked = module.hook_attn_scores(scores)
        if hooked is not scores:
            weights = _softmax(hooked)
    weights = module.hook_pattern(weights)
    batch, q_heads, q_len, k_len = weights.shape
    kv_heads = k.shape[1]
    grouped = weights.view(batch, kv_heads, q_heads // kv_heads, q_len, k_len)
    values = v.to(weights.dtype).unsqueeze(2)  # (B, Hkv, 1, Tk, D)
    out = (grouped @ values).reshape(batch, q_heads, q_len, v.shape[-1])  # (B, Hq, Tq, D)
    return out.to(q.dtype), weights


def project_heads(module: MultiHeadAttention, z: Tensor) -> Tensor:
    """The output projection head by head: z (B, T, H, D) -> (B, T, C), with
    ``hook_result`` seeing each head's write to the residual stream (B, T, H, C)."""
    batch, length, heads, head_dim = z.shape
    weight = module.c_proj.weight.view(-1, heads, head_dim)  # (C, H, D)
    result = torch.einsum("bthd,chd->bthc", z, weight)  # (B, T, H, C)
    result = module.hook_result(result)
    out = result.sum(dim=2)  # (B, T, C)
    if module.c_proj.bias is not None:
        out = out + module.c_proj.bias
    return out
