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
    rotary_pct: float = 1.0  # fraction of head_dim rotated (GPT-NeoX/Pythia: 0.25)
    rope_scaling: Literal["none", "linear", "llama3"] = "none"
    rope_factor: float = 1.0  # linear / llama3 scaling factor
    rope_low_freq_factor: float = 1.0  # llama3
    rope_high_freq_factor: float = 4.0  # llama3
    rope_original_max_positions: int = 8192  # llama3: the pre-scaling context
    norm: Literal["layernorm", "rmsnorm", "gemma_rmsnorm"] = "layernorm"  # gemma: x̂·(1 + w)
    norm_eps: float = 1e-5
    mlp: Literal["gelu", "swiglu", "geglu"] = "gelu"  # geglu: gated, tanh-GELU (Gemma)
    activation: Literal["gelu_tanh", "gelu"] = "gelu_tanh"  # GELU MLP only
    bias: bool = True  # biases in attention, MLP and LayerNorm
    qkv_bias: bool | None = None  # None: = bias (Qwen2: True with bias=False)
    attn_out_bias: bool | None = None  # None: = bias
    mlp_bias: bool | None = None  # None: = bias
    qk_norm: bool = False  # a norm of width head_dim on each q and k head (Qwen3, Gemma3)
    parallel_residual: bool = False  # x + attn(ln_1(x)) + mlp(ln_2(x)) (GPT-NeoX)
    sandwich_norm: bool = False  # norms after attention and after the MLP too (Gemma 2/3)
    embed_scale: bool = False  # token embeddings times √n_embd (Gemma)
    sliding_window: int | None = None  # keys a "sliding" layer's query sees, itself included
    layer_types: tuple[str, ...] | None = None  # "global"/"sliding" per layer; None: all one
    rope_local_theta: float | None = None  # sliding layers' RoPE base, unscaled (Gemma3)
    attn_softcap: float | None = None  # scores = cap·tanh(scores/cap) (Gemma2)
    final_softcap: float | None = None  # logits = cap·tanh(logits/cap) (Gemma 2)
    query_pre_attn_scalar: float | None = None  # attention scale 1/√this instead of 1/√D
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
        check_choice(self, "mlp", ("gelu", "swiglu", "geglu"))
        check_choice(self, "activation", ("gelu_tanh", "gelu"))
        if self.intermediate_size is None:
            if self.mlp == "gelu":
                self.intermediate_size = 4 * self.n_embd
            else:  # Llama: 2/3 of 4·C, rounded up to a multiple of 64
                self.intermediate_size = -(-(8 * self.n_embd // 3) // 64) * 64
        check_positive_int(self, "intermediate_size")
        check_positive_float(self, "rope_theta")
        self._check_family_knobs()
        check_positive_float(self, "norm_eps")
        check_positive_float(self, "initializer_range")
        check_fraction(self, "dropout")
        if not isinstance(self.attention_backend, str) or not self.attention_backend:
            raise ValueError(
                f"GPTConfig.attention_backend must be a backend name such as 'auto', "
                f"got {self.attention_backend!r}"
            )

    def _check_family_knobs(self) -> None:
        check_choice(self, "norm", ("layernorm", "rmsnorm", "gemma_rmsnorm"))
        check_choice(self, "rope_scaling", ("none", "linear", "llama3"))
        for name in ("qkv_bias", "attn_out_bias", "mlp_bias"):
            if getattr(self, name) is None:
                setattr(self, name, self.bias)
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"GPTConfig.{name} must be True, False or None (= bias)")
        if not 0.0 < self.rotary_pct <= 1.0:
            raise ValueError(f"GPTConfig.rotary_pct must be in (0, 1], got {self.rotary_pct}")
        assert self.head_dim is not None
        if self.position == "rotary" and self.rotary_dim % 2 != 0:
            raise ValueError(
                f"GPTConfig.head_dim must be even for rotary positions: rotary_pct="
                f"{self.rotary_pct} rotates {self.rotary_dim} of head_dim={self.head_dim} dims; "
                "pick an even head_dim or another rotary_pct"
            )
        for name in ("rope_factor", "rope_low_freq_factor", "rope_high_freq_factor"):
            check_positive_float(self, name)
        check_positive_int(self, "rope_original_max_positions")
        high, low = self.rope_high_freq_factor, self.rope_low_freq_factor
        if self.rope_scaling == "llama3" and high <= low:
            raise ValueError(
                "GPTConfig.rope_high_freq_factor must exceed rope_low_freq_factor for llama3 "
                f"scaling, got {self.rope_high_freq_factor} <= {self.rope_low_freq_factor}"
            )
        if self.rope_scaling != "none" and self.position != "rotary":
            raise ValueError("GPTConfig.rope_scaling needs position='rotary'")
        if self.sliding_window is not None:
            check_positive_int(self, "sliding_window")
        if self.layer_types is None:
            self.layer_types = ("global" if self.sliding_window is None else "sliding",) * (
                self.n_layer
            )
        self.layer_types = tuple(self.layer_types)
        if len(self.layer_types) != self.n_layer or not set(self.layer_types) <= {
            "global",
            "sliding",
        }:
            raise ValueError(
                f"GPTConfig.layer_types must list 'global' or 'sliding' for each of the "
                f"{self.n_layer} layers, got {self.layer_types!r}"
            )
        if "sliding" in self.layer_types and self.sliding_window is None:
            raise ValueError(
                "GPTConfig.layer_types has 'sliding' layers but sliding_window is None; "
                "set sliding_window (the number of keys a query sees)"
            )
        for name in ("rope_local_theta", "attn_softcap", "final_softcap", "query_pre_attn_scalar"):
            if getattr(self, name) is not None:
                check_positive_float(self, name)

    @property
    def rotary_dim(self) -> int:
        """How many of each head's dims rotate: int(head_dim · rotary_pct)."""
        assert self.head_dim is not None
        return int(self.head_dim * self.rotary_pct)

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
