"""Shared helpers of the attention tests: random problems, running a backend with gradients,
and "PyTorch at the same precision" (the peer of the low-precision error rule)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

import qkv
from qkv.attention.alibi import alibi_slopes
from qkv.attention.dropout import full_keep_mask
from qkv.attention.reference import alibi_bias, position_allowed
from qkv.attention.validate import validate


@dataclass(frozen=True)
class Shape:
    batch: int
    q_heads: int
    kv_heads: int
    q_len: int
    k_len: int
    head_dim: int
    v_dim: int

    def __str__(self) -> str:
        return (
            f"B{self.batch}-H{self.q_heads}/{self.kv_heads}-N{self.q_len}x{self.k_len}"
            f"-D{self.head_dim}/{self.v_dim}"
        )


@dataclass
class Problem:
    q: Tensor
    k: Tensor
    v: Tensor
    options: dict = field(default_factory=dict)


def make_variant(name: str, shape: Shape, gen: torch.Generator) -> dict:
    """Keyword options of qkv.attention for a named variant ('+' combines variants)."""
    options: dict = {}
    for part in name.split("+"):
        if part == "none":
            pass
        elif part == "causal":
            options["causal"] = True
        elif part == "window":
            options["window"] = (5, 2)
        elif part == "window_left":
            options["window"] = (3, None)
        elif part == "alibi":
            options["alibi_slopes"] = alibi_slopes(shape.q_heads)
        elif part == "alibi_batch":  # random per-batch slopes, shape (B, Hq)
            options["alibi_slopes"] = torch.rand(shape.batch, shape.q_heads, generator=gen)
        elif part == "softcap":
            options["softcap"] = 1.5
        elif part == "scale":
            options["scale"] = 0.37
        elif part == "dropout":
            options["dropout_p"] = 0.25
        elif part == "bool_mask":  # per-batch padding-style mask with some fully masked rows
            mask = torch.rand(shape.batch, 1, shape.q_len, shape.k_len, generator=gen) > 0.3
            mask[:, :, :: max(2, shape.q_len // 3)] = False  # whole rows with no key
            options["mask"] = mask
        elif part == "float_mask":
            bias = torch.randn(1, shape.q_heads, shape.q_len, shape.k_len, generator=gen)
            bias[torch.rand(bias.shape, generator=gen) < 0.2] = float("-inf")
            options["mask"] = bias
        else:
            raise KeyError(part)
    return options


def make_problem(shape: Shape, variant: str, dtype: torch.dtype, seed: int) -> Problem:
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(shape.batch, shape.q_heads, shape.q_len, shape.head_dim, generator=gen)
    k = torch.randn(shape.batch, shape.kv_heads, shape.k_len, shape.head_dim, generator=gen)
    v = torch.randn(shape.batch, shape.kv_heads, shape.k_len, shape.v_dim, generator=gen)
    options = make_variant(variant, shape, gen)
    mask = options.get("mask")
    if mask is not None and mask.is_floating_point() and dtype != torch.float32:
        options["mask"] = mask.to(dtype)
    return Problem(q=q.to(dtype), k=k.to(dtype), v=v.to(dtype), options=options)


def run_with_grads(
    fn, problem: Problem, seed: int, dtype: torch.dtype | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(out, dq, dk, dv) of fn(q, k, v, **options) under a fixed random output gradient.

    ``dtype`` casts the inputs first (the float64 oracle of a low-precision problem). The
    global seed is reset so that dropout draws the same mask seed in every run.
    """
    dtype = dtype or problem.q.dtype
    q, k, v = (t.detach().to(dtype).requires_grad_() for t in (problem.q, problem.k, problem.v))
    options = dict(problem.options)
    mask = options.get("mask")
    if mask is not None and mask.is_floating_point():
        options["mask"] = mask.to(dtype)
    torch.manual_seed(seed)
    out = fn(q, k, v, **options)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed + 1))
    (out.float() * grad.to(out.device)).sum().backward()
    return out.detach(), q.grad, k.grad, v.grad


def backend_fn(name: str):
    return lambda q, k, v, **o: qkv.attention(q, k, v, backend=name, **o)


def torch_same_precision(q: Tensor, k: Tensor, v: Tensor, **options) -> Tensor:
    """The formula in plain torch ops at q's own dtype (no upcast): the peer of the error rule."""
    call = validate(q, k, v, **options)
    dtype = q.dtype
    groups = call.groups
    kk = k.repeat_interleave(groups, dim=1)  # (B, Hq, Nk, D)
    vv = v.repeat_interleave(groups, dim=1)  # (B, Hq, Nk, Dv)
    scores = (q @ kk.transpose(-1, -2)) * call.scale  # (B, Hq, Nq, Nk)
    if call.softcap is not None:
        scores = call.softcap * torch.tanh(scores / call.softcap)
    rows = torch.arange(call.q_len)
    cols = torch.arange(call.k_len)
    if call.alibi_slopes is not None:
        scores = scores + alibi_bias(call, rows, cols).to(dtype)
    if call.mask is not None and call.mask.is_floating_point():
        scores = scores + call.mask.to(dtype)
    allowed = position_allowed(call, rows, cols)
    if call.mask is not None and call.mask.dtype == torch.bool:
        allowed = call.mask if allowed is None else call.mask & allowed
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    # Rows with no allowed key: softmax of all -inf is NaN in torch; give them 0 like qkv.
    empty = torch.isneginf(scores).all(dim=-1, keepdim=True)
    weights = torch.softmax(scores.masked_fill(empty, 0.0), dim=-1).masked_fill(empty, 0.0)
    if call.dropout_p > 0:
        keep = full_keep_mask(call.dropout_seed, call.dropout_p, *weights.shape, q.device)
        weights = weights * keep / (1 - call.dropout_p)
    return weights @ vv


def max_error(a: Tensor, b: Tensor) -> float:
    return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0


def precision_eps(dtype: torch.dtype) -> float:
    """The tiny absolute slack of the error rule."""
    return {torch.float32: 1e-6, torch.bfloat16: 1e-3, torch.float16: 1e-4}.get(dtype, 0.0)


def is_finite(t: Tensor) -> bool:
    return bool(torch.isfinite(t).all()) and not math.isnan(float(t.double().sum()))
