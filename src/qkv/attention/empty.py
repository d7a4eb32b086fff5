"""Calls with a zero-sized batch, query or key dimension: one defined result for every backend.

Kernels disagree about empty tensors (an IndexError from a reduction over 0 keys, a reshape
of 0 elements that cannot infer a dim, a kernel launch over an empty grid), so no backend
ever sees such a call: ``qkv.attention`` answers it here, the same for every backend name.
The result follows the rules of the full formula: no query gives no output row; a query
with no key (Nk = 0) gives 0, as a query whose every key is masked does; the gradients of
q, k, v (and of a float mask or ALiBi slopes) are zeros of their shapes. Zero heads or a
zero head dim are refused by ``validate`` (the scale 1/√D is undefined at D = 0).
"""

from __future__ import annotations

import torch
from torch import Tensor

from qkv.attention.call import AttentionCall, compute_dtype


def is_empty(call: AttentionCall) -> bool:
    """True when the batch, the queries or the keys are zero-sized."""
    return call.batch == 0 or call.q_len == 0 or call.k_len == 0


def empty_attention(call: AttentionCall) -> tuple[Tensor, Tensor | None]:
    """(out (B, Hq, Nq, Dv) of zeros in q's dtype, weights (B, Hq, Nq, Nk) or None).

    Both stay attached to the inputs' graph (a zero-weight sum of each), so ``backward``
    works and gives zero gradients, as it would for any fully masked row.
    """
    q, k, v = call.q, call.k, call.v
    dtype = compute_dtype(q.dtype)
    inputs = [q, k, v, call.mask, call.alibi_slopes]
    # 0-dim zero that depends on every differentiable input: sum() of an empty tensor is 0.
    anchor = sum(t.sum().to(dtype) * 0 for t in inputs if t is not None and t.is_floating_point())
    out = torch.zeros((*q.shape[:3], v.shape[-1]), dtype=dtype, device=q.device) + anchor
    weights = None
    if call.need_weights:
        weights = torch.zeros((*q.shape[:3], k.shape[2]), dtype=dtype, device=q.device) + anchor
    return out.to(q.dtype), weights
