"""Attention benchmark cases: one implementation (a qkv backend or a peer) on one problem.

A :class:`Case` names the implementation and the problem; :func:`build` turns it into a
``run()`` that does the forward (and backward) pass, after taking the baseline resident
memory once q, k, v exist. ``measure.py`` times it; ``tables.py`` lays cases out in rows.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from qkv.attention import attention, explain_backend
from qkv.attention.alibi import alibi_slopes
from qkv.attention.backends import get_backend
from qkv.attention.validate import validate
from qkv.bench.hardware import attention_flops

# The implementations a case can name. qkv's own: auto and the CPU backends. Peers:
# torch-sdpa (F.scaled_dot_product_attention, fused CPU kernel), naive (softmax(q·kᵀ)·v in
# plain ops), sdpa+mask (SDPA given the variant as an explicit float mask), flex
# (torch.compile'd FlexAttention).
QKV_IMPLS = ("auto", "flash-tiles", "tiled", "sdpa", "reference")
PEER_IMPLS = ("torch-sdpa", "naive", "sdpa+mask", "flex")
VARIANTS = ("plain", "window", "alibi", "softcap")
WINDOW = 512  # sliding window: each query sees itself and the 512 keys before it
SOFTCAP = 30.0


@dataclass(frozen=True, kw_only=True)
class Case:
    impl: str
    n: int
    heads: int = 8
    dim: int = 64
    batch: int = 1
    dtype: str = "float32"
    causal: bool = False
    variant: str = "plain"
    backward: bool = False

    def __post_init__(self) -> None:
        if self.impl not in QKV_IMPLS + PEER_IMPLS:
            raise ValueError(f"unknown implementation {self.impl!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.dtype not in ("float32", "bfloat16", "float64"):
            raise ValueError(f"dtype must be float32, bfloat16 or float64, got {self.dtype!r}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    @property
    def flops(self) -> float:
        """FlashAttention's count (``hardware.attention_flops``)."""
        return attention_flops(
            self.batch, self.heads, self.n, self.n, self.dim,
            causal=self.causal, backward=self.backward,
        )  # fmt: skip

    def options(self) -> dict:
        """Keyword options of qkv.attention for this case."""
        options: dict = {"causal": self.causal}
        if self.variant == "window":
            options["window"] = (WINDOW, 0)
        elif self.variant == "alibi":
            options["alibi_slopes"] = alibi_slopes(self.heads)
        elif self.variant == "softcap":
            options["softcap"] = SOFTCAP
        return options

    def estimated_bytes(self) -> int:
        """Rough peak of the N×N tensors this case materialises (for the OOM guard)."""
        square = self.batch * self.heads * self.n * self.n
        elt = self.torch_dtype.itemsize
        if self.impl == "reference":
            return square * max(elt, 4) * (6 if self.backward else 3)
        if self.impl == "naive":
            return square * elt * (5 if self.backward else 3)
        if self.impl == "sdpa+mask":
            heads = self.heads if self.variant == "alibi" else 1
            return self.batch * heads * self.n * self.n * elt * 2
        return 0

    def refusal(self) -> str | None:
        """Why this implementation cannot run this case here, or None.

        A qkv backend named directly answers with its own refusal (decided from shapes and
        options: the probe tensors are never computed with).
        """
        if self.impl in QKV_IMPLS and self.impl != "auto":
            probe = torch.empty(self.batch, self.heads, self.n, self.dim, dtype=self.torch_dtype)
            why = get_backend(self.impl).refusal(validate(probe, probe, probe, **self.options()))
            return None if why is None else f"{self.impl} refuses: {why}"
        if self.impl in ("torch-sdpa", "naive") and self.variant != "plain":
            return "peer only for plain attention"
        if self.impl == "sdpa+mask" and self.variant == "plain":
            return "plain attention needs no mask"
        if self.impl == "sdpa+mask" and self.variant == "softcap":
            return "softcap changes scores; no mask expresses it"
        if self.impl == "flex":
            if self.variant == "plain":
                return "FlexAttention compared on variants only"
            if self.backward:
                return "FlexAttention has no CPU backward (torch 2.13)"
        return None


@dataclass(kw_only=True)
class Result:
    case: Case
    times: list[float] = field(default_factory=list)
    peak_bytes: int | None = None
    chosen: str = ""
    reason: str = ""
    error: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else math.nan

    @property
    def gflops(self) -> float:
        return self.case.flops / self.median / 1e9 if self.times else math.nan


def _explicit_mask(case: Case) -> Tensor:
    """The variant as SDPA's additive float mask: (1, 1, N, N) or (1, H, N, N) for ALiBi."""
    from qkv.attention.reference import alibi_bias, position_allowed

    probe = torch.empty(case.batch, case.heads, case.n, 1)
    call = validate(probe, probe, probe, **case.options())
    rows = cols = torch.arange(case.n)
    bias = torch.zeros(1, 1, case.n, case.n, dtype=case.torch_dtype)
    if call.alibi_slopes is not None:
        bias = alibi_bias(call, rows, cols).to(case.torch_dtype)  # (1, H, N, N)
    allowed = position_allowed(call, rows, cols)
    if allowed is not None:
        bias.masked_fill_(~allowed, float("-inf"))  # in place: at N=16k ALiBi's bias is 8 GiB
    return bias


def _flex(case: Case) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    offset = 0
    window, heads = WINDOW, case.heads

    def keep(b, h, q_idx, kv_idx):
        allowed = q_idx + offset >= kv_idx
        if case.variant == "window":
            allowed = allowed & (kv_idx >= q_idx + offset - window)
        return allowed

    score_mod = None
    if case.variant == "alibi":
        slopes = alibi_slopes(heads)

        def score_mod(score, b, h, q_idx, kv_idx):
            return score - slopes[h] * (q_idx - kv_idx).abs()

    elif case.variant == "softcap":

        def score_mod(score, b, h, q_idx, kv_idx):
            return SOFTCAP * torch.tanh(score / SOFTCAP)

    block_mask = create_block_mask(keep, None, None, case.n, case.n, device="cpu")
    compiled = torch.compile(flex_attention, dynamic=False)
    return lambda q, k, v: compiled(q, k, v, score_mod=score_mod, block_mask=block_mask)


def build(case: Case) -> tuple[Callable[[], Tensor], int, str, str]:
    """(run, baseline max RSS, chosen backend, reason); run() does forward (+ backward).

    The baseline is taken once q, k, v exist and before anything else (an explicit mask,
    a compiled kernel) is built, so those count towards the case's peak memory.
    """
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    shape = (case.batch, case.heads, case.n, case.dim)
    inputs = tuple(
        torch.randn(shape, generator=gen).to(case.torch_dtype).requires_grad_(case.backward)
        for _ in range(3)
    )
    q, k, v = inputs
    baseline = max_rss_bytes()
    options = case.options()
    chosen, reason = case.impl, ""
    if case.impl in QKV_IMPLS:
        choice = explain_backend(q, k, v, backend=case.impl, **options)
        chosen, reason = choice.backend, choice.reason
        forward = lambda: attention(q, k, v, backend=case.impl, **options)  # noqa: E731
    elif case.impl == "torch-sdpa":
        forward = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=case.causal)  # noqa: E731
    elif case.impl == "naive":

        def forward() -> Tensor:
            scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(case.dim))  # (B, H, N, N)
            if case.causal:
                future = torch.ones(case.n, case.n, dtype=torch.bool).triu_(1)
                scores = scores.masked_fill(future, float("-inf"))
            return torch.softmax(scores, dim=-1) @ v

    elif case.impl == "sdpa+mask":
        mask = _explicit_mask(case)
        forward = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # noqa: E731
    else:  # flex
        flex = _flex(case)
        forward = lambda: flex(q, k, v)  # noqa: E731

    def run() -> Tensor:
        out = forward()
        if case.backward:
            out.backward(torch.ones_like(out))
            for t in inputs:
                t.grad = None
        return out

    return run, baseline, chosen, reason


def max_rss_bytes() -> int:
    """This process's peak resident memory so far (``getrusage`` max RSS), in bytes."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
