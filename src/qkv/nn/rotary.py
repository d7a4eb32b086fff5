"""Rotary position embeddings (RoPE), Llama layout ("rotate half").

A head vector x of size D is split in halves (x1, x2) and rotated pairwise by the angle
position · θ^(-2i/D): out = x·cos + rotate_half(x)·sin with rotate_half(x) = (−x2, x1). The
cos/sin tables are computed once in float32 (as Hugging Face's LlamaRotaryEmbedding does) and
cast to the activations' dtype at use, so bf16 models match transformers bit for bit.

Partial rotary (GPT-NeoX/Pythia, ``rotary_dim`` < D) rotates the first ``rotary_dim`` dims of
each head and passes the rest through. RoPE scaling ``"linear"`` divides every frequency by
``factor``; ``"llama3"`` (Llama 3.1+) divides only the low frequencies, blending the middle
band, exactly as transformers' ``_compute_llama3_parameters``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


def rotate_half(x: Tensor) -> Tensor:
    """(x1, x2) -> (−x2, x1) on the last dim."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate x (B, H, T, D) by cos/sin (B, 1, T, R) (float32 tables, cast to x's dtype);
    with R < D only the first R dims rotate (partial rotary)."""
    cos = cos.to(x.dtype)
    sin = sin.to(x.dtype)
    rotary_dim = cos.shape[-1]
    if rotary_dim == x.shape[-1]:
        return x * cos + rotate_half(x) * sin
    rotated, passed = x[..., :rotary_dim], x[..., rotary_dim:]
    return torch.cat((rotated * cos + rotate_half(rotated) * sin, passed), dim=-1)


@dataclass(frozen=True, kw_only=True)
class RopeScaling:
    """How RoPE frequencies are stretched for a longer context: ``kind`` "linear" or
    "llama3" (the other fields are llama3's)."""

    kind: str
    factor: float
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_positions: int = 8192

    def __post_init__(self) -> None:
        if self.kind not in ("linear", "llama3"):
            raise ValueError(
                f"RoPE scaling {self.kind!r} is not implemented; qkv has 'linear' and 'llama3'"
            )

    def apply(self, inv_freq: Tensor) -> Tensor:
        if self.kind == "linear":
            return inv_freq / self.factor
        low_wavelen = self.original_max_positions / self.low_freq_factor
        high_wavelen = self.original_max_positions / self.high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > low_wavelen, inv_freq / self.factor, inv_freq)
        smooth = (self.original_max_positions / wavelen - self.low_freq_factor) / (
            self.high_freq_factor - self.low_freq_factor
        )
        smoothed = (1 - smooth) * scaled / self.factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
        return torch.where(medium, smoothed, scaled)


class RotaryEmbedding(nn.Module):
    """cos/sin tables for positions 0..max_positions-1, built lazily per device.

    The tables are plain attributes rather than buffers so that a model created on the
    ``meta`` device and loaded with ``load_state_dict(assign=True)`` still gets real tables,
    and so they never appear in a state dict.

    Example::

        >>> rope = RotaryEmbedding(head_dim=64, max_positions=2048)
        >>> cos, sin = rope(torch.arange(10)[None])  # (1, 1, 10, 64) each
    """

    def __init__(
        self,
        *,
        head_dim: int,
        max_positions: int,
        theta: float = 10000.0,
        scaling: RopeScaling | None = None,
    ) -> None:
        super().__init__()
        if head_dim % 2 != 0:
            raise ValueError(f"rotary head_dim must be even, got {head_dim}; use an even head size")
        self.head_dim = head_dim  # the rotated width (rotary_dim of a partial rotary)
        self.max_positions = max_positions
        self.theta = float(theta)
        self.scaling = scaling
        self._tables: tuple[Tensor, Tensor] | None = None

    def inv_freq(self, device: torch.device | None = None) -> Tensor:
        """θ^(-2i/D) for i < D/2, float32 (D/2,), computed exactly as transformers does."""
        exponent = torch.arange(0, self.head_dim, 2, dtype=torch.int64, device=device).float()
        inv_freq = 1.0 / (self.theta ** (exponent / self.head_dim))
        return inv_freq if self.scaling is None else self.scaling.apply(inv_freq)

    def tables(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """(cos, sin), each float32 (max_positions, D), cached for ``device``."""
        if self._tables is None or self._tables[0].device != device:
            positions = torch.arange(self.max_positions, device=device).float()
            freqs = positions[:, None] * self.inv_freq(device)[None, :]  # (P, D/2)
            emb = torch.cat((freqs, freqs), dim=-1)  # (P, D)
            self._tables = (emb.cos(), emb.sin())
        return self._tables

    def forward(self, position_ids: Tensor) -> tuple[Tensor, Tensor]:
        """position_ids (B, T) int -> (cos, sin) float32, each (B, 1, T, D)."""
        cos, sin = self.tables(position_ids.device)
        return cos[position_ids].unsqueeze(1), sin[position_ids].unsqueeze(1)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, max_positions={self.max_positions}, theta={self.theta:g}"
