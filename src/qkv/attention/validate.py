"""Argument checking for ``qkv.attention``: every bad input becomes a ValueError naming the
argument, what was received and what was expected."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from qkv.attention.call import AttentionCall, Window, default_scale


def _fail(message: str) -> None:
    raise ValueError(message)


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            _fail(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            _fail(
                f"{name} must have rank 4 (batch, heads, seq, head_dim), got shape "
                f"{tuple(t.shape)}; add missing dims with .unsqueeze() or .view()"
            )
        if not t.is_floating_point():
            _fail(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if not (q.device == k.device == v.device):
        _fail(
            f"q, k and v must be on one device, got q on {q.device}, k on {k.device}, "
            f"v on {v.device}; move them with .to(q.device)"
        )
    if not (q.dtype == k.dtype == v.dtype):
        _fail(
            f"q, k and v must share one dtype, got q {q.dtype}, k {k.dtype}, v {v.dtype}; "
            "cast them with .to(q.dtype)"
        )
    bq, hq, _, dq = q.shape
    bk, hk, nk, dk = k.shape
    bv, hv, nv, _ = v.shape
    if not (bq == bk == bv):
        _fail(f"batch sizes differ: q has {bq}, k has {bk}, v has {bv}; they must be equal")
    if dq != dk:
        _fail(f"q and k head_dim differ: q has {dq}, k has {dk}; they must be equal")
    if hk != hv:
        _fail(f"k and v head counts differ: k has {hk}, v has {hv}; they must be equal")
    if nk != nv:
        _fail(f"k and v sequence lengths differ: k has {nk}, v has {nv}; they must be equal")
    if hk == 0 or hq % hk != 0:
        _fail(
            f"q heads ({hq}) must be a multiple of k/v heads ({hk}) for grouped-query "
            "attention; choose a k/v head count that divides the query heads"
        )


def _check_mask(mask: Tensor, q: Tensor, k: Tensor) -> Tensor:
    if not isinstance(mask, Tensor):
        _fail(f"mask must be a torch.Tensor or None, got {type(mask).__name__}")
    if mask.dtype != torch.bool and not mask.is_floating_point():
        _fail(
            f"mask must be bool (True = may attend) or floating (added to scores), got dtype "
            f"{mask.dtype}; convert with mask.bool() or mask.to(q.dtype)"
        )
    if mask.is_floating_point() and mask.dtype != q.dtype and mask.dtype != torch.float32:
        _fail(
            f"float mask dtype {mask.dtype} must match q's dtype {q.dtype} or be float32; "
            "convert with mask.to(q.dtype)"
        )
    if mask.device != q.device:
        _fail(f"mask is on {mask.device} but q is on {q.device}; move it with .to(q.device)")
    target = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    if mask.dim() > 4:
        _fail(f"mask must have at most 4 dims, got shape {tuple(mask.shape)}")
    shape = (1,) * (4 - mask.dim()) + tuple(mask.shape)
    for got, want, dim in zip(shape, target, ("batch", "heads", "query", "key")):
        if got not in (1, want):
            _fail(
                f"mask of shape {tuple(mask.shape)} does not broadcast to "
                f"(batch, q_heads, q_len, k_len) = {target}: its {dim} dim is {got}, "
                f"expected 1 or {want}"
            )
    return mask.view(shape)


def _check_window(window: Window | None) -> Window | None:
    if window is None:
        return None
    if not isinstance(window, tuple | list) or len(window) != 2:
        _fail(f"window must be a (left, right) pair, got {window!r}")
    left, right = window
    for side, value in (("left", left), ("right", right)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(f"window {side} size must be an int or None, got {value!r}")
        if value < 0:
            _fail(f"window {side} size must be >= 0 (or None for unbounded), got {value}")
    if left is None and right is None:
        return None  # unbounded on both sides: no restriction
    return (left, right)


def _check_slopes(slopes: Tensor, q: Tensor) -> Tensor:
    if not isinstance(slopes, Tensor):
        slopes = torch.as_tensor(slopes, dtype=torch.float32)
    batch, heads = q.shape[0], q.shape[1]
    if slopes.dim() == 1 and slopes.shape[0] == heads:
        slopes = slopes.view(1, heads)
    elif not (slopes.dim() == 2 and slopes.shape[1] == heads and slopes.shape[0] in (1, batch)):
        _fail(
            f"alibi_slopes must have shape ({heads},) or ({batch}, {heads}) for q with "
            f"{heads} heads, got {tuple(slopes.shape)}"
        )
    if not slopes.is_floating_point():
        _fail(f"alibi_slopes must be floating point, got dtype {slopes.dtype}")
    return slopes.to(device=q.device, dtype=torch.float32)


def validate(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool = False,
    mask: Tensor | None = None,
    scale: float | None = None,
    dropout_p: float = 0.0,
    window: Window | None = None,
    alibi_slopes: Tensor | None = None,
    softcap: float | None = None,
    need_weights: bool = False,
) -> AttentionCall:
    """Check every argument of ``qkv.attention`` and return the normalised call."""
    _check_qkv(q, k, v)
    if mask is not None:
        mask = _check_mask(mask, q, k)
    if scale is None:
        scale = default_scale(q.shape[-1])
    elif not isinstance(scale, int | float) or not math.isfinite(scale):
        _fail(f"scale must be a finite number or None, got {scale!r}")
    if not isinstance(dropout_p, int | float) or not (0.0 <= dropout_p < 1.0):
        _fail(f"dropout_p must be in [0, 1), got {dropout_p!r}")
    if softcap is not None and (not isinstance(softcap, int | float) or not softcap > 0):
        _fail(f"softcap must be a positive number or None, got {softcap!r}")
    if alibi_slopes is not None:
        alibi_slopes = _check_slopes(alibi_slopes, q)
    window = _check_window(window)
    seed = 0
    if dropout_p > 0:
        # Drawn from torch's global generator so torch.manual_seed reproduces the mask.
        seed = int(torch.randint(0, 2**62, (1,)).item())
    return AttentionCall(
        q=q,
        k=k,
        v=v,
        causal=bool(causal),
        mask=mask,
        scale=float(scale),
        dropout_p=float(dropout_p),
        dropout_seed=seed,
        window=window,
        alibi_slopes=alibi_slopes,
        softcap=None if softcap is None else float(softcap),
        need_weights=bool(need_weights),
    )
