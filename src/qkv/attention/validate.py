"""Argument checking for ``qkv.attention``: every bad input becomes a ValueError naming the
argument, what was received and what was expected.

:func:`validate` checks a whole (B, H, N, D) call; the option checks it is built from
(:func:`check_scale`, :func:`check_dropout_p`, :func:`check_softcap`, :func:`check_window`,
:func:`check_alibi_slopes`, :func:`check_flag`) are public so that other entry points with
other tensor layouts (``varlen_attention``) check options with the same rules and messages.
"""

from __future__ import annotations

import math
from typing import NoReturn

import torch
from torch import Tensor

from qkv.attention.call import AttentionCall, Window, default_scale


def fail(message: str) -> NoReturn:
    """Raise the ValueError of a bad argument (``message`` names it, the value and the fix)."""
    raise ValueError(message)


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            fail(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            fail(
                f"{name} must have rank 4 (batch, heads, seq, head_dim), got shape "
                f"{tuple(t.shape)}; add missing dims with .unsqueeze() or .view()"
            )
        if not t.is_floating_point():
            fail(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if not (q.device == k.device == v.device):
        fail(
            f"q, k and v must be on one device, got q on {q.device}, k on {k.device}, "
            f"v on {v.device}; move them with .to(q.device)"
        )
    if not (q.dtype == k.dtype == v.dtype):
        fail(
            f"q, k and v must share one dtype, got q {q.dtype}, k {k.dtype}, v {v.dtype}; "
            "cast them with .to(q.dtype)"
        )
    bq, hq, _, dq = q.shape
    bk, hk, nk, dk = k.shape
    bv, hv, nv, dv = v.shape
    if not (bq == bk == bv):
        fail(f"batch sizes differ: q has {bq}, k has {bk}, v has {bv}; they must be equal")
    if dq != dk:
        fail(f"q and k head_dim differ: q has {dq}, k has {dk}; they must be equal")
    if hk != hv:
        fail(f"k and v head counts differ: k has {hk}, v has {hv}; they must be equal")
    if nk != nv:
        fail(f"k and v sequence lengths differ: k has {nk}, v has {nv}; they must be equal")
    if hq == 0 or hk == 0:
        fail(
            f"q and k/v need at least one head each, got q with {hq} heads and k/v with {hk}; "
            "attention over 0 heads has no defined output: skip the call instead"
        )
    if dq == 0 or dv == 0:
        which = "q and k head_dim" if dq == 0 else "v head_dim"
        fail(
            f"{which} must be at least 1, got 0 (shapes q {tuple(q.shape)}, "
            f"v {tuple(v.shape)}); the scale 1/√head_dim is undefined at 0: skip the call"
        )
    if hq % hk != 0:
        fail(
            f"q heads ({hq}) must be a multiple of k/v heads ({hk}) for grouped-query "
            "attention; choose a k/v head count that divides the query heads"
        )


def _check_mask(mask: Tensor, q: Tensor, k: Tensor) -> Tensor:
    if not isinstance(mask, Tensor):
        fail(f"mask must be a torch.Tensor or None, got {type(mask).__name__}")
    if mask.dtype != torch.bool and not mask.is_floating_point():
        fail(
            f"mask must be bool (True = may attend) or floating (added to scores), got dtype "
            f"{mask.dtype}; convert with mask.bool() or mask.to(q.dtype)"
        )
    if mask.is_floating_point() and mask.dtype != q.dtype and mask.dtype != torch.float32:
        fail(
            f"float mask dtype {mask.dtype} must match q's dtype {q.dtype} or be float32; "
            "convert with mask.to(q.dtype)"
        )
    if mask.device != q.device:
        fail(f"mask is on {mask.device} but q is on {q.device}; move it with .to(q.device)")
    target = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    if mask.dim() > 4:
        fail(f"mask must have at most 4 dims, got shape {tuple(mask.shape)}")
    shape = (1,) * (4 - mask.dim()) + tuple(mask.shape)
    for got, want, dim in zip(shape, target, ("batch", "heads", "query", "key")):
        if got not in (1, want):
            fail(
                f"mask of shape {tuple(mask.shape)} does not broadcast to "
                f"(batch, q_heads, q_len, k_len) = {target}: its {dim} dim is {got}, "
                f"expected 1 or {want}"
            )
    return mask.view(shape)


def check_window(window: Window | None) -> Window | None:
    """``window`` as (left, right) with None for an unbounded side, or None for no window.

    Example::

        >>> check_window([32, 0])
        (32, 0)
        >>> check_window((None, None)) is None  # unbounded on both sides: no restriction
        True
    """
    if window is None:
        return None
    if not isinstance(window, tuple | list) or len(window) != 2:
        fail(f"window must be a (left, right) pair, got {window!r}")
    left, right = window
    for side, value in (("left", left), ("right", right)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            fail(f"window {side} size must be an int or None, got {value!r}")
        if value < 0:
            fail(f"window {side} size must be >= 0 (or None for unbounded), got {value}")
    if left is None and right is None:
        return None  # unbounded on both sides: no restriction
    return (left, right)


def check_alibi_slopes(slopes: Tensor, *, batch: int, heads: int, device: torch.device) -> Tensor:
    """ALiBi slopes of shape (heads,) or (batch | 1, heads), on ``device``, as float32 (float64
    kept) (batch | 1, heads); differentiable when they require grad.

    Example::

        >>> check_alibi_slopes(alibi_slopes(8), batch=2, heads=8, device=q.device).shape
        torch.Size([1, 8])
    """
    if not isinstance(slopes, Tensor):
        fail(
            f"alibi_slopes must be a torch.Tensor or None, got {type(slopes).__name__}; "
            "build it with torch.tensor(...) or qkv.attention.alibi_slopes(heads)"
        )
    if slopes.device != device:
        fail(f"alibi_slopes is on {slopes.device} but q is on {device}; move it with .to(q.device)")
    if slopes.dim() == 1 and slopes.shape[0] == heads:
        slopes = slopes.view(1, heads)
    elif not (slopes.dim() == 2 and slopes.shape[1] == heads and slopes.shape[0] in (1, batch)):
        fail(
            f"alibi_slopes must have shape ({heads},) or ({batch}, {heads}) for q with "
            f"{heads} heads, got {tuple(slopes.shape)}"
        )
    if not slopes.is_floating_point():
        fail(f"alibi_slopes must be floating point, got dtype {slopes.dtype}")
    # float64 stays float64: the float64 oracle (and gradcheck) need the slopes unrounded.
    return slopes.to(dtype=torch.float64 if slopes.dtype == torch.float64 else torch.float32)


def _is_number(value: object) -> bool:
    """An int or float but not a bool (True is an int to Python, never a scale to qkv)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_flag(name: str, value: object) -> bool:
    """``value`` if it is a bool; a ValueError naming ``name`` otherwise (1, "yes", a tensor)."""
    if not isinstance(value, bool):
        fail(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return value


def check_scale(scale: float | None, head_dim: int) -> float:
    """``scale`` as a float; None becomes 1/√head_dim."""
    if scale is None:
        return default_scale(head_dim)
    if not _is_number(scale) or not math.isfinite(scale):
        fail(f"scale must be a finite number or None, got {scale!r}")
    return float(scale)


def check_softcap(softcap: float | None) -> float | None:
    """``softcap`` as a finite positive float, or None for no soft-capping."""
    if softcap is None:
        return None
    if not _is_number(softcap) or not math.isfinite(softcap) or not softcap > 0:
        fail(
            f"softcap must be a positive number (finite) or None, got {softcap!r}; "
            "pass None for no soft-capping"
        )
    return float(softcap)


def check_dropout_p(dropout_p: float) -> float:
    """``dropout_p`` as a float in [0, 1)."""
    if not _is_number(dropout_p) or not (0.0 <= dropout_p < 1.0):
        fail(f"dropout_p must be in [0, 1), got {dropout_p!r}")
    return float(dropout_p)


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
    causal = check_flag("causal", causal)
    need_weights = check_flag("need_weights", need_weights)
    if mask is not None:
        mask = _check_mask(mask, q, k)
    scale = check_scale(scale, q.shape[-1])
    dropout_p = check_dropout_p(dropout_p)
    softcap = check_softcap(softcap)
    if alibi_slopes is not None:
        batch, heads = q.shape[0], q.shape[1]
        alibi_slopes = check_alibi_slopes(alibi_slopes, batch=batch, heads=heads, device=q.device)
    window = check_window(window)
    seed = 0
    if dropout_p > 0:
        # Drawn from torch's global generator so torch.manual_seed reproduces the mask.
        seed = int(torch.randint(0, 2**62, (1,)).item())
    return AttentionCall(
        q=q,
        k=k,
        v=v,
        causal=causal,
        mask=mask,
        scale=scale,
        dropout_p=dropout_p,
        dropout_seed=seed,
        window=window,
        alibi_slopes=alibi_slopes,
        softcap=softcap,
        need_weights=need_weights,
    )
