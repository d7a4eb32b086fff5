"""``varlen_attention``: fused attention over packed variable-length sequences (no padding).

The public API beside ``qkv.attention`` for batches packed as (total_len, heads, head_dim):
its options are checked by ``validate``'s own option checks and its refusals come from
``triton_support``, exactly as for ``backend="triton"``. Importing this module does not
import Triton; calling the function does.
"""

from __future__ import annotations

import torch
from torch import Tensor

from qkv.attention.call import Window
from qkv.attention.triton_support import (
    device_refusal,
    dtype_refusal,
    head_dim_refusal,
    key_bounds,
    triton_available,
)
from qkv.attention.validate import (
    check_alibi_slopes,
    check_flag,
    check_scale,
    check_softcap,
    check_window,
    fail,
)


def _check_cu_seqlens(name: str, cu: Tensor, total: int, device: torch.device) -> Tensor:
    """Cumulative sequence starts [0, len_0, len_0 + len_1, ..., total] as int32 on ``device``."""
    if not isinstance(cu, Tensor) or cu.dim() != 1 or cu.shape[0] < 2:
        fail(
            f"{name} must be a 1-D tensor [0, len_0, len_0 + len_1, ..., total] with at least 2 "
            f"entries, got {cu if not isinstance(cu, Tensor) else tuple(cu.shape)}"
        )
    if cu.dtype not in (torch.int32, torch.int64):
        fail(f"{name} must hold integers (int32), got dtype {cu.dtype}; use .to(torch.int32)")
    values = cu.tolist()
    if values[0] != 0 or any(b < a for a, b in zip(values, values[1:])):
        fail(f"{name} must start at 0 and never decrease, got {values}")
    if values[-1] != total:
        fail(
            f"{name} ends at {values[-1]} but the packed tensor holds {total} rows; the last "
            "entry must equal the total length"
        )
    return cu.to(device=device, dtype=torch.int32).contiguous()


def _check_packed(q: Tensor, k: Tensor, v: Tensor) -> None:
    """q (Tq, Hq, Dk), k (Tk, Hkv, Dk), v (Tk, Hkv, Dv) on one device in one dtype."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor) or t.dim() != 3:
            fail(
                f"{name} must be a packed (total_len, heads, head_dim) tensor, got "
                f"{tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__}"
            )
    if not (q.device == k.device == v.device) or not (q.dtype == k.dtype == v.dtype):
        fail(
            f"q, k, v must share device and dtype, got {q.device}/{q.dtype}, "
            f"{k.device}/{k.dtype}, {v.device}/{v.dtype}; move and cast them with "
            ".to(q.device, q.dtype)"
        )
    if k.shape[:2] != v.shape[:2] or q.shape[2] != k.shape[2]:
        fail(
            f"shapes q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} do not match: "
            "k and v need the same rows and heads, q and k the same head dim"
        )
    if k.shape[1] == 0 or q.shape[1] % k.shape[1] != 0:
        fail(
            f"q heads ({q.shape[1]}) must be a multiple of k/v heads ({k.shape[1]}); choose a "
            "k/v head count that divides the query heads"
        )


def varlen_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cu_seqlens_q: Tensor,
    cu_seqlens_k: Tensor | None = None,
    *,
    causal: bool = False,
    scale: float | None = None,
    window: Window | None = None,
    alibi_slopes: Tensor | None = None,
    softcap: float | None = None,
) -> Tensor:
    """Fused attention over B packed sequences of different lengths, without padding.

    Shapes: q (Tq, Hq, Dk), k (Tk, Hkv, Dk), v (Tk, Hkv, Dv) with Hq % Hkv == 0; sequence b
    occupies rows cu_seqlens_q[b]:cu_seqlens_q[b + 1] of q and cu_seqlens_k[b]:cu_seqlens_k[b + 1]
    of k and v (``cu_seqlens_k`` defaults to ``cu_seqlens_q``: self-attention). Returns
    (Tq, Hq, Dv) in q's dtype, differentiable with respect to q, k and v. Options mean what
    they mean in ``qkv.attention``; causal and window align bottom-right within each sequence.
    Runs on CUDA (sm80+) or, with TRITON_INTERPRET=1, on CPU tensors.

    Example::

        >>> lengths = [5, 17, 9]
        >>> cu = torch.tensor([0, 5, 22, 31], dtype=torch.int32)
        >>> q = torch.randn(31, 8, 64, device="cuda", dtype=torch.bfloat16)
        >>> from qkv.attention import varlen_attention
        >>> out = varlen_attention(q, q, q, cu, causal=True)  # (31, 8, 64)
    """
    _check_packed(q, k, v)
    reason = (
        triton_available()
        or device_refusal(q.device)
        or dtype_refusal(q.dtype)
        or head_dim_refusal(q.shape[2], v.shape[2])
    )
    if reason is not None:
        fail(f"varlen_attention cannot run: {reason}")
    cu_q = _check_cu_seqlens("cu_seqlens_q", cu_seqlens_q, q.shape[0], q.device)
    if cu_seqlens_k is None:
        cu_seqlens_k = cu_seqlens_q
    cu_k = _check_cu_seqlens("cu_seqlens_k", cu_seqlens_k, k.shape[0], q.device)
    if cu_q.shape != cu_k.shape:
        fail(
            f"cu_seqlens_q has {cu_q.shape[0] - 1} sequences but cu_seqlens_k has "
            f"{cu_k.shape[0] - 1}; they must describe the same batch"
        )
    scale = check_scale(scale, q.shape[2])
    softcap = check_softcap(softcap)
    if alibi_slopes is not None:
        batch, heads = cu_q.shape[0] - 1, q.shape[1]
        slopes = check_alibi_slopes(alibi_slopes, batch=batch, heads=heads, device=q.device)
        if slopes.requires_grad:
            fail(
                "varlen_attention does not compute gradients with respect to alibi_slopes; "
                "pass alibi_slopes.detach(), or pad and call qkv.attention (backend 'tiled')"
            )
        alibi_slopes = slopes.detach().contiguous()  # (B|1, Hq) float32
    left, right = key_bounds(check_flag("causal", causal), check_window(window))

    from qkv.attention.triton_kernels.autograd import fused_attention
    from qkv.attention.triton_kernels.problem import Problem

    lengths_q = (cu_q[1:] - cu_q[:-1]).max().item()
    lengths_k = (cu_k[1:] - cu_k[:-1]).max().item()
    problem = Problem(
        scale=scale,
        softcap=softcap,
        left=left,
        right=right,
        alibi_slopes=alibi_slopes,
        cu_seqlens_q=cu_q,
        cu_seqlens_k=cu_k,
        max_seqlen_q=max(1, int(lengths_q)),
        max_seqlen_k=max(1, int(lengths_k)),
    )
    return fused_attention(q, k, v, problem)
