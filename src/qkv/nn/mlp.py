"""Feed-forward blocks: the GPT-2/BERT GELU MLP and the Llama SwiGLU MLP.

Parameter names: ``GeluMLP`` has ``c_fc`` (C -> I) and ``c_proj`` (I -> C) as in nanoGPT /
GPT-2; ``SwiGLU`` has ``gate_proj``, ``up_proj`` (C -> I) and ``down_proj`` (I -> C) as in
transformers' LlamaMLP, so weights import key by key.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

Activation = Literal["gelu_tanh", "gelu"]


class GeluMLP(nn.Module):
    """c_proj(gelu(c_fc(x))), with GELU's tanh approximation (GPT-2) or exact erf (BERT).

    Shapes: x (B, T, C) -> (B, T, C).
    """

    def __init__(
        self,
        hidden_size: int,
        intermediate_size: int,
        *,
        bias: bool = True,
        activation: Activation = "gelu_tanh",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if activation not in ("gelu_tanh", "gelu"):
            raise ValueError(f"unknown activation {activation!r}; expected 'gelu_tanh' or 'gelu'")
        self.c_fc = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.c_proj = nn.Linear(intermediate_size, hidden_size, bias=bias)
        self.approximate = "tanh" if activation == "gelu_tanh" else "none"
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate)))


class SwiGLU(nn.Module):
    """down_proj(act(gate_proj(x)) · up_proj(x)): SiLU (Llama's SwiGLU) or tanh-GELU
    (``activation="gelu_tanh"``: Gemma's GeGLU). Shapes: x (B, T, C) -> (B, T, C)."""

    def __init__(
        self,
        hidden_size: int,
        intermediate_size: int,
        *,
        bias: bool = False,
        dropout: float = 0.0,
        activation: Literal["silu", "gelu_tanh"] = "silu",
    ) -> None:
        super().__init__()
        if activation not in ("silu", "gelu_tanh"):
            raise ValueError(
                f"unknown gated activation {activation!r}; expected 'silu' or 'gelu_tanh'"
            )
        self.activation = activation
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        gate = self.gate_proj(x)
        gate = F.silu(gate) if self.activation == "silu" else F.gelu(gate, approximate="tanh")
        return self.dropout(self.down_proj(gate * self.up_proj(x)))
