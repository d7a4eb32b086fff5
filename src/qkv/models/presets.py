"""Named model shapes: tiny ones for tests and demos up to GPT-2 / BERT-base sizes.

``preset(name, **overrides)`` returns a fresh config (vocab_size and any other field can be
overridden); ``build(config)`` makes the model it describes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from qkv.models.config import BertConfig, GPTConfig

_LLAMA = dict(
    position="rotary",
    norm="rmsnorm",
    norm_eps=1e-6,
    mlp="swiglu",
    bias=False,
    tie_embeddings=False,
)

_TINY = dict(vocab_size=512, n_positions=256, n_layer=2, n_head=4, n_kv_head=2, n_embd=64)
_GEMMA = dict(
    _LLAMA,
    norm="gemma_rmsnorm",
    mlp="geglu",
    sandwich_norm=True,
    embed_scale=True,
    tie_embeddings=True,
    head_dim=16,
    query_pre_attn_scalar=16.0,
    sliding_window=32,
    layer_types=("sliding", "global"),
)
# Debug-size shapes of each Hugging Face family (2 layers, width 64): each exports with
# qkv.save(format="hf") as its family, and trains with `qkv train --model NAME`.
_FAMILY_TINY: dict[str, dict[str, Any]] = {
    "llama3-tiny": dict(
        _LLAMA, rope_theta=500000.0, rope_scaling="llama3", rope_factor=8.0,
        rope_original_max_positions=64,
    ),
    "smollm2-tiny": dict(_LLAMA, rope_theta=100000.0, tie_embeddings=True),
    "mistral-tiny": dict(_LLAMA, sliding_window=32),
    "qwen2-tiny": dict(_LLAMA, qkv_bias=True, rope_theta=1000000.0, tie_embeddings=True),
    "qwen3-tiny": dict(_LLAMA, qk_norm=True, head_dim=24, rope_theta=1000000.0),
    "gemma2-tiny": dict(_GEMMA, attn_softcap=50.0, final_softcap=30.0),
    "gemma3-tiny": dict(_GEMMA, qk_norm=True, rope_theta=1000000.0, rope_local_theta=10000.0),
    "phi3-tiny": dict(_LLAMA, sliding_window=32),
    "pythia-tiny": dict(
        position="rotary", rotary_pct=0.25, parallel_residual=True, activation="gelu",
        tie_embeddings=False, n_kv_head=4,
    ),
}  # fmt: skip

# Constructor arguments per preset: overrides are applied before derived fields (head_dim,
# intermediate_size, n_kv_head) are filled in, so preset("gpt2", n_embd=1024) stays consistent.
_PRESET_ARGS: dict[str, tuple[type[GPTConfig] | type[BertConfig], dict[str, Any]]] = {
    # minGPT's tiny shapes, for tests and demos.
    "gpt-nano": (GPTConfig, dict(vocab_size=512, n_positions=128, n_layer=3, n_head=3, n_embd=48)),
    "gpt-micro": (
        GPTConfig,
        dict(vocab_size=512, n_positions=256, n_layer=4, n_head=4, n_embd=128),
    ),
    "llama-nano": (
        GPTConfig,
        dict(
            vocab_size=512,
            n_positions=256,
            n_layer=2,
            n_head=4,
            n_kv_head=2,
            n_embd=64,
            intermediate_size=176,
            **_LLAMA,
        ),
    ),
    # The training tutorial's model (nanoGPT's Shakespeare-char "baby GPT": no biases, exact
    # GELU, which on CPU costs half of the tanh form: 0.37 vs 0.72 ms per layer forward at
    # batch 12 × 64, measured 2026-11-24); vocab_size comes from the tokenizer.
    "baby-gpt": (
        GPTConfig,
        dict(
            vocab_size=256,
            n_positions=64,
            n_layer=4,
            n_head=4,
            n_embd=128,
            bias=False,
            activation="gelu",
        ),
    ),
    "gpt2": (GPTConfig, {}),
    "llama-small": (
        GPTConfig,
        dict(
            vocab_size=32000,
            n_positions=2048,
            n_layer=12,
            n_head=12,
            n_kv_head=4,
            n_embd=768,
            intermediate_size=2048,
            rope_theta=10000.0,
            **_LLAMA,
        ),
    ),
    **{name: (GPTConfig, {**_TINY, **args}) for name, args in _FAMILY_TINY.items()},
    "bert-tiny": (BertConfig, dict(n_layer=2, n_head=2, n_embd=128, intermediate_size=512)),
    "bert-base": (BertConfig, {}),
    # all-MiniLM-L6-v2's encoder (sentence-transformers).
    "minilm-l6": (BertConfig, dict(n_layer=6, n_head=12, n_embd=384, intermediate_size=1536)),
}

PRESETS: dict[str, GPTConfig | BertConfig] = {
    name: kind(**args) for name, (kind, args) in _PRESET_ARGS.items()
}


def preset(name: str, **overrides: Any) -> GPTConfig | BertConfig:
    """A copy of the named preset config with ``overrides`` applied (validated).

    Example::

        >>> config = preset("baby-gpt", vocab_size=tokenizer.vocab_size)
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    kind, args = _PRESET_ARGS[name]
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(
            f"unknown {kind.__name__} field(s) {unknown} for preset {name!r}; "
            f"known fields: {sorted(known)}"
        )
    return kind(**{**args, **overrides})


def build(config: GPTConfig | BertConfig, *, masked_lm: bool = False) -> nn.Module:
    """The model a config describes: ``GPT`` for "gpt"; ``Bert`` (or ``BertForMaskedLM`` with
    ``masked_lm=True``) for "bert"."""
    from qkv.models.bert import Bert, BertForMaskedLM
    from qkv.models.gpt import GPT

    if isinstance(config, GPTConfig):
        if masked_lm:
            raise ValueError("masked_lm=True needs a BertConfig; a GPTConfig builds a GPT")
        return GPT(config)
    if isinstance(config, BertConfig):
        return BertForMaskedLM(config) if masked_lm else Bert(config)
    raise ValueError(
        f"build needs a GPTConfig or BertConfig, got {type(config).__name__}; "
        "see qkv.models.preset()"
    )
