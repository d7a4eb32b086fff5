"""Normalisation layers: RMSNorm (Llama), GemmaRMSNorm (1 + w) and a factory by name."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

NormKind = Literal["layernorm", "rmsnorm", "gemma_rmsnorm"]


class RMSNorm(nn.Module):
    """y = weight · x / sqrt(mean(x²) + eps), computed in float32 and cast back to x's dtype
    before the weight multiplies, exactly as transformers' LlamaRMSNorm does.

    Shapes: x (..., C) -> (..., C).
    """

    def __init__(self, size: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        hidden = x.to(torch.float32)
        variance = hidden.pow(2).mean(-1, keepdim=True)
        hidden = hidden * torch.rsqrt(variance + self.eps)
        return self.weight * hidden.to(dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class GemmaRMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + eps) · (1 + weight), all in float32, then cast to x's dtype, as
    transformers' Gemma2/Gemma3 RMSNorm (the weight is stored as an offset from 1, zeros at
    init). Shapes: x (..., C) -> (..., C)."""

    def __init__(self, size: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(size))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        hidden = x.float()
        hidden = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + self.eps)
        return (hidden * (1.0 + self.weight.float())).type_as(x)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def make_norm(kind: NormKind, size: int, *, eps: float, bias: bool = True) -> nn.Module:
    """A LayerNorm (with or without bias) or an RMSNorm of width ``size``."""
    if kind == "layernorm":
        return nn.LayerNorm(size, eps=eps, bias=bias)
    if kind == "rmsnorm":
        return RMSNorm(size, eps=eps)
    if kind == "gemma_rmsnorm":
        return GemmaRMSNorm(size, eps=eps)
    raise ValueError(f"unknown norm {kind!r}; expected 'layernorm', 'rmsnorm' or 'gemma_rmsnorm'")
