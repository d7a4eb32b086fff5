"""Model configs: typed, validated dataclasses saved as JSON beside the weights.

``GPTConfig`` describes GPT-2 exactly with its defaults (learned positions, pre-LayerNorm,
tanh-GELU MLP, biases, tied embeddings) and, by choices, a Llama-style decoder (rotary
positions, RMSNorm, SwiGLU, grouped-query attention, no biases, untied lm_head).
``BertConfig`` describes BERT (post-LayerNorm encoder with token types and an MLM head).
Both round-trip through ``to_dict()`` / ``from_dict()`` (from :class:`qkv.configs.Serialisable`,
re-exported here), whose ``architecture`` field ("gpt" / "bert") tells
:func:`config_from_dict` which class to build.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from qkv.configs import (
    Serialisable,
    check_choice,
    check_fraction,
    check_positive_float,
    check_positive_int,
)

__all__ = ["BertConfig", "GPTConfig", "Serialisable", "config_from_dict"]


@dataclass(kw_only=True)
class GPTConfig(Serialisable):
    """A decoder-only transformer. Defaults are GPT-2 small (124M)."""

    architecture: Literal["gpt"] = "gpt"
    vocab_size: int = 50257
    n_positions: int = 1024  # longest sequence (prompt + generated tokens)
    n_layer: int = 12
    n_head: int = 12
    n_kv_head: int | None = None  # None: = n_head (multi-head); fewer: grouped-query
    n_embd: int = 768
    head_dim: int | None = None  # None: n_embd // n_head
    intermediate_size: int | None = None  # None: 4·n_embd (gelu) or Llama's 8/3 rule (swiglu)
    position: Literal["learned", "rotary"] = "learned"
    rope_theta: float = 10000.0
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    norm_eps: float = 1e-5
    mlp: Literal["gelu", "swiglu"] = "gelu"
    activation: Literal["gelu_tanh", "gelu"] = "gelu_tanh"  # GELU MLP only
    bias: bool = True  # biases in attention, MLP and LayerNorm
    tie_embeddings: bool = True  # lm_head shares wte's weight
    dropout: float = 0.0  # embedding, residual and attention dropout (training only)
    initializer_range: float = 0.02
    attention_backend: str = "auto"

    def __post_init__(self) -> None:
        check_choice(self, "architecture", ("gpt",))
        for name in ("vocab_size", "n_positions", "n_layer", "n_head", "n_embd"):
            check_positive_int(self, name)
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        check_positive_int(self, "n_kv_head")
        if self.n_head % self.n_kv_head != 0:
            raise ValueError(
                f"GPTConfig.n_head ({self.n_head}) must be a multiple of n_kv_head "
                f"({self.n_kv_head}); choose n_kv_head dividing n_head"
            )
        if self.head_dim is None:
            if self.n_embd % self.n_head != 0:
                raise ValueError(
                    f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head "
                    f"({self.n_head}), or set head_dim explicitly"
                )
            self.head_dim = self.n_embd // self.n_head
        check_positive_int(self, "head_dim")
        check_choice(self, "position", ("learned", "rotary"))
        check_choice(self, "norm", ("layernorm", "rmsnorm"))
        check_choice(self, "mlp", ("gelu", "swiglu"))
        check_choice(self, "activation", ("gelu_tanh", "gelu"))
        if self.position == "rotary" and self.head_dim % 2 != 0:
            raise ValueError(
                f"GPTConfig.head_dim must be even for rotary positions, got {self.head_dim}"
            )
        if self.intermediate_size is None:
            if self.mlp == "gelu":
                self.intermediate_size = 4 * self.n_embd
            else:  # Llama: 2/3 of 4·C, rounded up to a multiple of 64
                self.intermediate_size = -(-(8 * self.n_embd // 3) // 64) * 64
        check_positive_int(self, "intermediate_size")
        check_positive_float(self, "rope_theta")
        check_positive_float(self, "norm_eps")
        check_positive_float(self, "initializer_range")
        check_fraction(self, "dropout")
        if not isinstance(self.attention_backend, str) or not self.attention_backend:
            raise ValueError(
                f"GPTConfig.attention_backend must be a backend name such as 'auto', "
                f"got {self.attention_backend!r}"
            )

    @property
    def max_seq_len(self) -> int:
        """Alias of ``n_positions``: the longest sequence the model accepts."""
        return self.n_positions


@dataclass(kw_only=True)
class BertConfig(Serialisable):
    """A BERT encoder. Defaults are bert-base-uncased."""

    architecture: Literal["bert"] = "bert"
    vocab_size: int = 30522
    n_positions: int = 512
    type_vocab_size: int = 2
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    intermediate_size: int = 3072
    norm_eps: float = 1e-12
    dropout: float = 0.1  # embedding, residual and MLM-head dropout (training only)
    attention_dropout: float = 0.1
    pad_token_id: int = 0
    initializer_range: float = 0.02
    attention_backend: str = "auto"

    def __post_init__(self) -> None:
        check_choice(self, "architecture", ("bert",))
        for name in ("vocab_size", "n_positions", "type_vocab_size", "n_layer", "n_head"):
            check_positive_int(self, name)
        check_positive_int(self, "n_embd")
        check_positive_int(self, "intermediate_size")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"BertConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})"
            )
        check_positive_float(self, "norm_eps")
        check_positive_float(self, "initializer_range")
        check_fraction(self, "dropout")
        check_fraction(self, "attention_dropout")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(
                f"BertConfig.pad_token_id must be in [0, vocab_size={self.vocab_size}), "
                f"got {self.pad_token_id}"
            )

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def max_seq_len(self) -> int:
        return self.n_positions


def config_from_dict(data: dict[str, Any]) -> GPTConfig | BertConfig:
    """Rebuild a config saved with ``to_dict()``, choosing the class by ``architecture``."""
    kinds: dict[str, type[GPTConfig] | type[BertConfig]] = {"gpt": GPTConfig, "bert": BertConfig}
    architecture = data.get("architecture")
    if architecture not in kinds:
        raise ValueError(
            f"config architecture must be one of {sorted(kinds)}, got {architecture!r}"
        )
    return kinds[architecture].from_dict(data)
