"""Rotary position embeddings (RoPE), Llama layout ("rotate half").

A head vector x of size D is split in halves (x1, x2) and rotated pairwise by the angle
position · θ^(-2i/D): out = x·cos + rotate_half(x)·sin with rotate_half(x) = (−x2, x1). The
cos/sin tables are computed once in float32 (as Hugging Face's LlamaRotaryEmbedding does) and
cast to the activations' dtype at use, so bf16 models match transformers bit for bit.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def rotate_half(x: Tensor) -> Tensor:
    """(x1, x2) -> (−x2, x1) on the last dim."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate x (B, H, T, D) by cos/sin (B, 1, T, D) (float32 tables, cast to x's dtype)."""
    cos = cos.to(x.dtype)
    sin = sin.to(x.dtype)
    return x * cos + rotate_half(x) * sin


class RotaryEmbedding(nn.Module):
    """cos/sin tables for positions 0..max_positions-1, built lazily per device.

    The tables are plain attributes rather than buffers so that a model created on the
    ``meta`` device and loaded with ``load_state_dict(assign=True)`` still gets real tables,
    and so they never appear in a state dict.

    Example::

        >>> rope = RotaryEmbedding(head_dim=64, max_positions=2048)
        >>> cos, sin = rope(torch.arange(10)[None])  # (1, 1, 10, 64) each
    """

    def __init__(self, *, head_dim: int, max_positions: int, theta: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2 != 0:
            raise ValueError(f"rotary head_dim must be even, got {head_dim}; use an even head size")
        self.head_dim = head_dim
        self.max_positions = max_positions
        self.theta = float(theta)
        self._tables: tuple[Tensor, Tensor] | None = None

    def inv_freq(self, device: torch.device | None = None) -> Tensor:
        """θ^(-2i/D) for i < D/2, float32 (D/2,), computed exactly as transformers does."""
        exponent = torch.arange(0, self.head_dim, 2, dtype=torch.int64, device=device).float()
        return 1.0 / (self.theta ** (exponent / self.head_dim))

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
