"""The ``sdpa`` backend: ``torch.nn.functional.scaled_dot_product_attention`` where one of its
fused kernels serves the call as asked, and a refusal with the reason everywhere else.

The backend never lets PyTorch fall back to its math path (which materialises the
(B, H, Nq, Nk) score matrix): ``check`` asks PyTorch which kernel it would pick
(``torch._fused_sdp_choice``, the function SDPA itself dispatches with) and refuses when
the answer is the math path. Measured with torch 2.13 on CPU (2026-11-24): the fused CPU
flash kernel serves float64/32/16 and bfloat16, bool and float masks, ``enable_gqa`` and
Nq ≠ Nk, and gives fully-masked rows output 0 with zero, finite gradients; it does not serve
dropout or a value head dim different from the query head dim (both go to the math path).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from qkv.attention.call import AttentionCall
from qkv.attention.registry import Backend

# torch.nn.attention.SDPBackend values (stable since torch 2.3).
_MATH = 0
_KERNEL_NAMES = {1: "flash", 2: "memory-efficient", 3: "cuDNN", 4: "overrideable"}


def _is_causal(call: AttentionCall) -> bool:
    """SDPA's is_causal is top-left aligned; it equals qkv's bottom-right rule iff Nq == Nk.

    A single query (decoding with a cache) sits at the last key and sees every key, so it is
    not causal at all.
    """
    return call.causal and call.q_len > 1


def _static_refusal(call: AttentionCall) -> str | None:
    """Reasons that do not depend on which kernel PyTorch would pick."""
    if call.need_weights:
        return "need_weights: SDPA does not return attention weights (use reference or tiled)"
    if call.softcap is not None:
        return "softcap changes every score: SDPA would need the explicit N×N score matrix"
    if call.alibi_slopes is not None:
        return "ALiBi needs an explicit (B, H, N, N) bias mask in SDPA"
    if call.window is not None:
        return "a sliding window needs an explicit N×N mask in SDPA"
    if call.causal and call.q_len > 1 and call.q_len != call.k_len:
        return (
            f"causal with Nq ({call.q_len}) ≠ Nk ({call.k_len}): SDPA aligns the causal mask "
            "top-left, qkv bottom-right; an explicit N×N mask would be needed"
        )
    if _is_causal(call) and call.mask is not None:
        return "causal together with a mask: SDPA would need them merged into one N×N mask"
    if call.dropout_p > 0 and call.q.device.type == "cpu":
        return "dropout on CPU runs only on SDPA's math path, which materialises N×N scores"
    return None


def _kernel_choice(call: AttentionCall) -> int:
    return int(
        torch._fused_sdp_choice(
            call.q,
            call.k,
            call.v,
            call.mask,
            call.dropout_p,
            _is_causal(call),
            scale=call.scale,
            enable_gqa=call.groups > 1,
        )
    )


def _has_empty_row(mask: Tensor) -> bool:
    """True if some query row of the (broadcast) mask allows no key at all."""
    blocked = ~mask if mask.dtype == torch.bool else torch.isneginf(mask)
    return bool(blocked.all(dim=-1).any())


def sdpa_check(call: AttentionCall) -> str | None:
    """Why SDPA cannot serve ``call`` without materialising N×N scores, or None."""
    reason = _static_refusal(call)
    if reason is not None:
        return reason
    try:
        kernel = _kernel_choice(call)
    except RuntimeError as error:  # PyTorch rejects the inputs outright
        return f"torch.nn.functional.scaled_dot_product_attention rejects this call: {error}"
    if call.mask is not None and call.q.device.type != "cpu" and _has_empty_row(call.mask):
        # Verified on CPU only (0 output, zero gradients); GPU kernels are not trusted here.
        return "the mask leaves a query row with no key, which SDPA's GPU kernels may turn into NaN"
    if kernel <= _MATH:
        why = ""
        if call.v.shape[-1] != call.q.shape[-1]:
            why = f" (value head dim {call.v.shape[-1]} ≠ query head dim {call.q.shape[-1]})"
        return (
            "no fused SDPA kernel serves this call; only the math path, which materialises "
            f"N×N scores{why}"
        )
    return None


def sdpa_kernel_name(call: AttentionCall) -> str:
    """Name of the fused kernel SDPA would run for ``call`` (for benchmarks and tests)."""
    return _KERNEL_NAMES.get(_kernel_choice(call), "math")


def sdpa_attention(call: AttentionCall) -> tuple[Tensor, Tensor | None]:
    """Backend entry point: out (B, Hq, Nq, Dv) in q's dtype; never weights."""
    mask = call.mask
    float_mask = mask is not None and mask.dtype != torch.bool
    if float_mask and mask.dtype != call.q.dtype and call.q.device.type != "cpu":
        # validate() allows a float32 mask with low-precision q; SDPA's CPU kernel accepts
        # it, other kernels want q's dtype.
        mask = mask.to(call.q.dtype)
    k, v, gqa = call.k, call.v, call.groups > 1
    if gqa and _gqa_backward_loses_precision(call):
        k, v, gqa = _expand_heads(k, call.groups), _expand_heads(v, call.groups), False
    out = F.scaled_dot_product_attention(
        call.q,
        k,
        v,
        attn_mask=mask,
        dropout_p=call.dropout_p,
        is_causal=_is_causal(call),
        scale=call.scale,
        enable_gqa=gqa,
    )
    return out, None


def _gqa_backward_loses_precision(call: AttentionCall) -> bool:
    """True where ``enable_gqa``'s backward breaks the precision rule: bf16/fp16 on CPU.

    Measured with torch 2.13 (2026-12-02, 6 query heads on 1 key/value head, d 128, 640
    queries): PyTorch's CPU flash kernel sums the query heads' dk, dv in the low precision
    inside the kernel, 1.5–2.8× the error of torch's own bf16 formula (rule: ≤ 2×); with k, v
    expanded to every query head the errors are 0.7–1.0×. Forward-only calls keep enable_gqa.
    """
    return (
        call.q.device.type == "cpu"
        and call.q.dtype in (torch.bfloat16, torch.float16)
        and torch.is_grad_enabled()
        and (call.k.requires_grad or call.v.requires_grad)
    )


def _expand_heads(t: Tensor, groups: int) -> Tensor:
    """(B, Hkv, N, D) -> (B, Hkv·G, N, D): each key/value head repeated for its query heads."""
    b, h, n, d = t.shape
    return t.unsqueeze(2).expand(b, h, groups, n, d).reshape(b, h * groups, n, d)


def _available() -> str | None:
    if not hasattr(torch, "_fused_sdp_choice"):
        return "this PyTorch build cannot report which SDPA kernel it would run"
    return None


BACKEND = Backend(
    name="sdpa",
    forward=sdpa_attention,
    check=sdpa_check,
    available=_available,
    description="torch scaled_dot_product_attention, fused kernels only (never the math path)",
)
