"""Model configs: typed, validated dataclasses saved as JSON beside the weights.

``GPTConfig`` describes GPT-2 exactly with its defaults (learned positions, pre-LayerNorm,
tanh-GELU MLP, biases, tied embeddings) and, by choices, a Llama-style decoder (rotary
positions, RMSNorm, SwiGLU, grouped-query attention, no biases, untied lm_head).
``BertConfig`` describes BERT (post-LayerNorm encoder with token types and an MLM head).
Both round-trip through ``to_dict()`` / ``from_dict()``, whose ``architecture`` field
("gpt" / "bert") tells :func:`config_from_dict` which class to build.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal


def _positive_int(config: object, name: str) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{type(config).__name__}.{name} must be a positive int, got {value!r}")


def _choice(config: object, name: str, allowed: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in allowed:
        raise ValueError(
            f"{type(config).__name__}.{name} must be one of {', '.join(map(repr, allowed))}, "
            f"got {value!r}"
        )


def _fraction(config: object, name: str) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ValueError(f"{type(config).__name__}.{name} must be in [0, 1), got {value!r}")


def _positive_float(config: object, name: str) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{type(config).__name__}.{name} must be a positive number, got {value!r}")


class _Serialisable:
    """to_dict / from_dict shared by the configs (JSON-serialisable plain values)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"unknown {cls.__name__} field(s) {unknown}; known fields: {sorted(names)}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(kw_only=True)
class GPTConfig(_Serialisable):
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
        _choice(self, "architecture", ("gpt",))
        for name in ("vocab_size", "n_positions", "n_layer", "n_head", "n_embd"):
            _positive_int(self, name)
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        _positive_int(self, "n_kv_head")
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
        _positive_int(self, "head_dim")
        _choice(self, "position", ("learned", "rotary"))
        _choice(self, "norm", ("layernorm", "rmsnorm"))
        _choice(self, "mlp", ("gelu", "swiglu"))
        _choice(self, "activation", ("gelu_tanh", "gelu"))
        if self.position == "rotary" and self.head_dim % 2 != 0:
            raise ValueError(
                f"GPTConfig.head_dim must be even for rotary positions, got {self.head_dim}"
            )
        if self.intermediate_size is None:
            if self.mlp == "gelu":
                self.intermediate_size = 4 * self.n_embd
            else:  # Llama: 2/3 of 4·C, rounded up to a multiple of 64
                self.intermediate_size = -(-(8 * self.n_embd // 3) // 64) * 64
        _positive_int(self, "intermediate_size")
        _positive_float(self, "rope_theta")
        _positive_float(self, "norm_eps")
        _positive_float(self, "initializer_range")
        _fraction(self, "dropout")
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
class BertConfig(_Serialisable):
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
        _choice(self, "architecture", ("bert",))
        for name in ("vocab_size", "n_positions", "type_vocab_size", "n_layer", "n_head"):
            _positive_int(self, name)
        _positive_int(self, "n_embd")
        _positive_int(self, "intermediate_size")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"BertConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})"
            )
        _positive_float(self, "norm_eps")
        _positive_float(self, "initializer_range")
        _fraction(self, "dropout")
        _fraction(self, "attention_dropout")
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
