"""The validated, normalised form of one ``qkv.attention`` call, shared by every backend.

Every backend receives an :class:`AttentionCall`: the tensors plus options already checked
and put into one canonical shape, so that no backend re-validates or re-interprets arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

Window = tuple[int | None, int | None]


@dataclass(frozen=True, kw_only=True)
class AttentionCall:
    """One attention problem, validated.

    Shapes: q (B, Hq, Nq, Dk), k (B, Hkv, Nk, Dk), v (B, Hkv, Nk, Dv), Hq % Hkv == 0.
    ``mask`` is None or 4-D, each dim either 1 or full (B, Hq, Nq, Nk), bool (True = may attend)
    or floating (added to the scores). ``alibi_slopes`` is None or float32 of shape (B or 1, Hq).
    ``window`` is None or (left, right) with None meaning unbounded on that side.
    ``dropout_seed`` seeds the counter-based dropout mask (see ``qkv.attention.dropout``) so
    that a backend can regenerate the same mask blockwise in its backward pass.
    """

    q: Tensor
    k: Tensor
    v: Tensor
    causal: bool = False
    mask: Tensor | None = None
    scale: float = 1.0
    dropout_p: float = 0.0
    dropout_seed: int = 0
    window: Window | None = None
    alibi_slopes: Tensor | None = None
    softcap: float | None = None
    need_weights: bool = False

    @property
    def batch(self) -> int:
        return self.q.shape[0]

    @property
    def q_heads(self) -> int:
        return self.q.shape[1]

    @property
    def kv_heads(self) -> int:
        return self.k.shape[1]

    @property
    def groups(self) -> int:
        """Query heads per key/value head (1 = MHA, Hq = MQA)."""
        return self.q.shape[1] // self.k.shape[1]

    @property
    def q_len(self) -> int:
        return self.q.shape[2]

    @property
    def k_len(self) -> int:
        return self.k.shape[2]

    @property
    def offset(self) -> int:
        """Nk - Nq: query i sits at key position i + offset (bottom-right alignment)."""
        return self.k.shape[2] - self.q.shape[2]

    @property
    def has_position_mask(self) -> bool:
        """True when causal or window removes keys by position alone."""
        return self.causal or self.window is not None

    def describe(self) -> str:
        """A short human summary used in dispatch reasons and logs."""
        parts = [
            f"q{tuple(self.q.shape)}",
            f"k{tuple(self.k.shape)}",
            str(self.q.dtype).removeprefix("torch."),
            self.q.device.type,
        ]
        if self.causal:
            parts.append("causal")
        if self.window is not None:
            parts.append(f"window={self.window}")
        if self.mask is not None:
            parts.append(f"{'bool' if self.mask.dtype == torch.bool else 'float'} mask")
        if self.alibi_slopes is not None:
            parts.append("alibi")
        if self.softcap is not None:
            parts.append(f"softcap={self.softcap:g}")
        if self.dropout_p > 0:
            parts.append(f"dropout={self.dropout_p:g}")
        if self.need_weights:
            parts.append("need_weights")
        return " ".join(parts)


def default_scale(head_dim: int) -> float:
    """1/√Dk, the scale of ``qkv.attention`` when none is given."""
    return 1.0 / math.sqrt(head_dim)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype every CPU backend computes scores and softmax in: float64 for float64
    inputs, float32 for everything else (bf16 scores of ~10 round to 1/16 before the softmax)."""
    return torch.float64 if dtype == torch.float64 else torch.float32
