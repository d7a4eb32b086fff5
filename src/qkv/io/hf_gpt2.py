"""Hugging Face GPT-2 (``GPT2LMHeadModel`` / ``GPT2Model``) <-> qkv ``GPT``.

qkv's GPT uses GPT-2's own parameter names, so the conversion is a key-by-key copy except
that GPT-2's Conv1D layers store weights as (in, out): c_attn, attn.c_proj, c_fc and
mlp.c_proj are transposed to ``nn.Linear``'s (out, in). ``lm_head.weight`` is absent from
tied checkpoints and filled from ``transformer.wte.weight``.
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

from qkv.io.adapter import (
    Adapter,
    NameMap,
    StateDict,
    add_prefix,
    config_mismatch,
    fields_from_hf,
    fields_to_hf,
    names_from_hf,
    names_to_hf,
    tie_head,
    unsupported,
)

ARCHITECTURES = ("GPT2LMHeadModel", "GPT2Model")
_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}
# Same names both sides; Conv1D weights are stored transposed.
NAMES = NameMap(
    hf_layer="transformer.h.{}.",
    qkv_layer="transformer.h.{}.",
    transposed=("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"),
)
FIELDS = {
    "vocab_size": (("vocab_size",), 50257),
    "n_positions": (("n_positions", "max_position_embeddings"), 1024),
    "n_embd": (("n_embd", "hidden_size"), 768),
    "n_layer": (("n_layer", "num_hidden_layers"), 12),
    "n_head": (("n_head", "num_attention_heads"), 12),
    "intermediate_size": (("n_inner",), None),  # None: 4·n_embd
    "norm_eps": (("layer_norm_epsilon",), 1e-5),
    "initializer_range": (("initializer_range",), 0.02),
    "tie_embeddings": (("tie_word_embeddings",), True),
}


def config_from_hf(hf: dict[str, Any]) -> tuple[Any, str]:
    from qkv.models import GPTConfig

    activation = hf.get("activation_function", "gelu_new")
    if activation not in _ACTIVATIONS:
        raise unsupported("gpt2", "activation_function", activation, ", ".join(_ACTIVATIONS))
    for field, bad in (
        ("scale_attn_by_inverse_layer_idx", True),
        ("scale_attn_weights", False),
        ("add_cross_attention", True),
    ):
        if hf.get(field) is bad:
            raise unsupported("gpt2", field, bad, f"{field}={not bad}")
    fields = fields_from_hf(hf, FIELDS)
    config = GPTConfig(
        **fields | {"tie_embeddings": bool(fields["tie_embeddings"])},
        activation=_ACTIVATIONS[activation],
        bias=True,
        dropout=float(hf.get("resid_pdrop") or 0.0),
    )
    architecture = (hf.get("architectures") or ["GPT2LMHeadModel"])[0]
    if architecture == "GPT2Model" and not config.tie_embeddings:
        # A bare GPT2Model has no head: qkv's GPT reads out through the embeddings.
        config = config.replace(tie_embeddings=True)
    return config, architecture


def canonical_names(state: StateDict, head: str) -> StateDict:
    """GPT2Model checkpoints lack the ``transformer.`` prefix of GPT2LMHeadModel's names."""
    return add_prefix(state, "transformer.", except_=("lm_head.",))


def ignored(name: str) -> bool:
    # Causal-mask buffers that older transformers versions saved.
    return re.search(r"\.attn\.(bias|masked_bias)$", name) is not None


def optional(name: str, config: Any) -> bool:
    return name == "lm_head.weight" and config.tie_embeddings


def state_from_hf(state: StateDict, config: Any) -> StateDict:
    out = names_from_hf(state, NAMES)
    return tie_head(
        out, head="lm_head.weight", embeddings="transformer.wte.weight", tied=config.tie_embeddings
    )


def state_to_hf(state: StateDict, model: nn.Module) -> StateDict:
    if model.config.tie_embeddings:  # type: ignore[union-attr]
        state = {n: t for n, t in state.items() if n != "lm_head.weight"}
    return names_to_hf(state, NAMES)


def mismatch(model: nn.Module) -> str | None:
    """Why ``model`` cannot be written as GPT-2, or None when it can."""
    return config_mismatch(
        model,
        "GPT-2",
        lambda c: {
            "position": "learned",
            "norm": "layernorm",
            "mlp": "gelu",
            "bias": True,
            "n_kv_head": c.n_head,
            "head_dim": c.n_embd // c.n_head,
        },
    )


def config_to_hf(model: nn.Module) -> dict[str, Any]:
    c = model.config  # type: ignore[union-attr]
    eos = 50256 if c.vocab_size > 50256 else None
    return {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        **fields_to_hf(c, FIELDS),
        "activation_function": "gelu_new" if c.activation == "gelu_tanh" else "gelu",
        "resid_pdrop": c.dropout,
        "embd_pdrop": c.dropout,
        "attn_pdrop": c.dropout,
        "scale_attn_weights": True,
        "bos_token_id": eos,
        "eos_token_id": eos,
    }


ADAPTER = Adapter(
    model_type="gpt2",
    architectures=ARCHITECTURES,
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    state_from_hf=state_from_hf,
    state_to_hf=state_to_hf,
    canonical_names=canonical_names,
    ignored=ignored,
    optional=optional,
    mismatch=mismatch,
)
