"""Oracles for the Triton kernel tests (no tests here): the float64 reference backend, and the
same formula evaluated by PyTorch in the low precision under test, for the precision rule
err(triton) ≤ 2·err(torch at the same precision) + eps, both measured against float64."""

from __future__ import annotations

import torch
from torch import Tensor

import qkv
from qkv.attention.dropout import full_keep_mask
from qkv.attention.validate import validate


def lowp_attention(q: Tensor, k: Tensor, v: Tensor, **opts: object) -> Tensor:
    """softmax(mods(scale·q·kᵀ))·v with every step in q's dtype (PyTorch's low-precision answer)."""
    dtype = q.dtype
    groups = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(groups, dim=1)  # (B, Hq, Nk, D)
    v = v.repeat_interleave(groups, dim=1)
    n_q, n_k = q.shape[2], k.shape[2]
    scale = opts.get("scale") or q.shape[-1] ** -0.5
    scores = (q @ k.transpose(-1, -2)) * scale  # (B, Hq, Nq, Nk)
    softcap = opts.get("softcap")
    if softcap is not None:
        scores = softcap * torch.tanh(scores / softcap)
    device = q.device  # CPU under the interpreter, CUDA in the gpu tests
    pos = torch.arange(n_q, device=device).view(-1, 1) + (n_k - n_q)  # (Nq, 1)
    cols = torch.arange(n_k, device=device).view(1, -1)  # (1, Nk)
    slopes = opts.get("alibi_slopes")
    if slopes is not None:
        slopes = torch.as_tensor(slopes).to(device).reshape(-1, q.shape[1])
        scores = scores - (slopes[:, :, None, None] * (pos - cols).abs()).to(dtype)
    allowed = torch.ones(n_q, n_k, dtype=torch.bool, device=device)
    if opts.get("causal"):
        allowed &= cols <= pos
    window = opts.get("window")
    if window is not None:
        left, right = window
        if left is not None:
            allowed &= cols >= pos - left
        if right is not None:
            allowed &= cols <= pos + right
    mask = opts.get("mask")
    if mask is not None:
        if mask.dtype == torch.bool:
            allowed = allowed & mask
        else:
            scores = scores + mask.to(dtype)
    scores = scores.masked_fill(~allowed, float("-inf"))
    row_max = scores.amax(-1, keepdim=True)
    row_max = torch.where(torch.isneginf(row_max), torch.zeros_like(row_max), row_max)
    exp = torch.exp(scores - row_max.detach())
    total = exp.sum(-1, keepdim=True)
    weights = exp / torch.where(total == 0, torch.ones_like(total), total)
    dropout_p = opts.get("dropout_p", 0.0)
    if dropout_p:
        # The keep mask of the counter-based hash, for the seed qkv.attention draws from torch's
        # generator (callers reseed torch before each call so every path draws the same seed).
        call = validate(q.detach(), k.detach(), v.detach(), dropout_p=dropout_p)
        keep = full_keep_mask(call.dropout_seed, dropout_p, *weights.shape, weights.device)
        weights = weights * keep / (1.0 - dropout_p)
    return weights @ v


def _grads(fn, q: Tensor, k: Tensor, v: Tensor, grad: Tensor, dtype: torch.dtype, backward: bool):
    leaves = [t.detach().to(dtype).requires_grad_(backward) for t in (q, k, v)]
    torch.manual_seed(1234)  # the same dropout seed for every path
    out = fn(*leaves)
    if not backward:
        return [out.detach().double()]
    dq, dk, dv = torch.autograd.grad(out, leaves, grad.to(out.dtype))
    return [t.detach().double() for t in (out, dq, dk, dv)]


def assert_precision(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    dtype: torch.dtype,
    *,
    backward: bool = True,
    eps: float = 1e-3,
    **opts: object,
) -> None:
    """``qkv.attention(..., backend="triton")`` checked by :func:`assert_precision_of`."""
    mask = opts.get("mask")

    def with_mask(cast: torch.dtype):
        if mask is None or mask.dtype == torch.bool:
            return opts
        return {**opts, "mask": mask.to(cast)}

    assert_precision_of(
        q,
        k,
        v,
        dtype,
        fast=lambda a, b, c: qkv.attention(a, b, c, backend="triton", **with_mask(dtype)),
        exact=lambda a, b, c: qkv.attention(a, b, c, backend="reference", **with_mask(a.dtype)),
        lowp=lambda a, b, c: lowp_attention(a, b, c, **with_mask(dtype)),
        backward=backward,
        eps=eps,
    )


def assert_precision_of(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    dtype: torch.dtype,
    *,
    fast,
    exact,
    lowp,
    backward: bool = True,
    eps: float = 1e-3,
) -> None:
    """``fast`` in ``dtype`` vs ``exact`` in float64, bounded by 2 × ``lowp`` (in ``dtype``) vs
    float64 + eps (eps relative to the largest exact value), for the output and, with
    ``backward``, dq, dk, dv. q, k, v are float64 masters; outputs have q's shape but v's last dim.
    """
    grad = torch.randn(*q.shape[:-1], v.shape[-1], dtype=torch.float64, device=q.device)
    exact_r = _grads(exact, q, k, v, grad, torch.float64, backward)
    fast_r = _grads(fast, q, k, v, grad, dtype, backward)
    lowp_r = _grads(lowp, q, k, v, grad, dtype, backward)
    for name, e, f, lo in zip(("out", "dq", "dk", "dv"), exact_r, fast_r, lowp_r):
        assert torch.isfinite(f).all(), f"{name}: triton produced non-finite values"
        err_fast = (f - e).abs().max().item() if e.numel() else 0.0
        err_lowp = (lo - e).abs().max().item() if e.numel() else 0.0
        bound = 2 * err_lowp + eps * max(1.0, e.abs().max().item() if e.numel() else 0.0)
        assert err_fast <= bound, (
            f"{name}: triton error {err_fast:.3e} > 2 × torch {dtype} error {err_lowp:.3e} + eps "
            f"(bound {bound:.3e})"
        )
