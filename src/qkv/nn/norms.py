"""Normalisation layers: RMSNorm (Llama) and a factory for LayerNorm / RMSNorm by name."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

NormKind = Literal["layernorm", "rmsnorm"]


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


def make_norm(kind: NormKind, size: int, *, eps: float, bias: bool = True) -> nn.Module:
    """A LayerNorm (with or without bias) or an RMSNorm of width ``size``."""
    if kind == "layernorm":
        return nn.LayerNorm(size, eps=eps, bias=bias)
    if kind == "rmsnorm":
        return RMSNorm(size, eps=eps)
    raise ValueError(f"unknown norm {kind!r}; expected 'layernorm' or 'rmsnorm'")
