"""Hugging Face Llama (``LlamaForCausalLM`` / ``LlamaModel``) <-> qkv ``GPT`` (Llama options).

Renames::

    model.embed_tokens.weight                       transformer.wte.weight
    model.layers.{i}.input_layernorm.weight         transformer.h.{i}.ln_1.weight
    model.layers.{i}.self_attn.{q,k,v}_proj.*       transformer.h.{i}.attn.c_attn.*  (rows q|k|v)
    model.layers.{i}.self_attn.o_proj.*             transformer.h.{i}.attn.c_proj.*
    model.layers.{i}.post_attention_layernorm.weight transformer.h.{i}.ln_2.weight
    model.layers.{i}.mlp.{gate,up,down}_proj.*      transformer.h.{i}.mlp.{gate,up,down}_proj.*
    model.norm.weight                               transformer.ln_f.weight
    lm_head.weight                                  lm_head.weight

Both sides rotate "half" vectors (transformers' layout), so q/k rows need no permutation.
"""

from __future__ import annotations

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

ARCHITECTURES = ("LlamaForCausalLM", "LlamaModel")
NAMES = NameMap(
    names={
        "model.embed_tokens.weight": "transformer.wte.weight",
        "model.norm.weight": "transformer.ln_f.weight",
    },
    hf_layer="model.layers.{}.",
    qkv_layer="transformer.h.{}.",
    modules={
        "input_layernorm": "ln_1",
        "post_attention_layernorm": "ln_2",
        "self_attn.o_proj": "attn.c_proj",
    },  # mlp.{gate,up,down}_proj keep their names
    fused={"attn.c_attn": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")},
)
FIELDS = {
    "vocab_size": (("vocab_size",), 32000),
    "n_positions": (("max_position_embeddings",), 2048),
    "n_embd": (("hidden_size",), 4096),
    "intermediate_size": (("intermediate_size",), 11008),
    "n_layer": (("num_hidden_layers",), 32),
    "n_head": (("num_attention_heads",), 32),
    "n_kv_head": (("num_key_value_heads",), None),  # None: = n_head
    "head_dim": (("head_dim",), None),  # None: n_embd // n_head
    "norm_eps": (("rms_norm_eps",), 1e-6),
    "initializer_range": (("initializer_range",), 0.02),
    "tie_embeddings": (("tie_word_embeddings",), False),
}


def config_from_hf(hf: dict[str, Any]) -> tuple[Any, str]:
    from qkv.models import GPTConfig

    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise unsupported("llama", "hidden_act", act, "'silu'")
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        raise unsupported("llama", "rope_type", rope_type, "'default' (no RoPE scaling)")
    attention_bias = bool(hf.get("attention_bias", False))
    mlp_bias = bool(hf.get("mlp_bias", False))
    if attention_bias != mlp_bias:
        raise unsupported(
            "llama", "attention_bias/mlp_bias", (attention_bias, mlp_bias), "both equal"
        )
    fields = fields_from_hf(hf, FIELDS)
    config = GPTConfig(
        **fields | {"tie_embeddings": bool(fields["tie_embeddings"])},
        position="rotary",
        rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
        norm="rmsnorm",
        mlp="swiglu",
        bias=attention_bias,
        dropout=float(hf.get("attention_dropout", 0.0)),
    )
    architecture = (hf.get("architectures") or ["LlamaForCausalLM"])[0]
    if architecture == "LlamaModel":
        config = config.replace(tie_embeddings=True)  # no head: read out through embeddings
    return config, architecture


def canonical_names(state: StateDict, head: str) -> StateDict:
    """LlamaModel checkpoints lack the ``model.`` prefix of LlamaForCausalLM's names."""
    return add_prefix(state, "model.", except_=("lm_head.",))


def ignored(name: str) -> bool:
    return name.endswith("rotary_emb.inv_freq")


def optional(name: str, config: Any) -> bool:
    return name == "lm_head.weight" and config.tie_embeddings


def state_from_hf(state: StateDict, config: Any) -> StateDict:
    out = names_from_hf(state, NAMES)
    return tie_head(
        out, head="lm_head.weight", embeddings="transformer.wte.weight", tied=config.tie_embeddings
    )


def state_to_hf(state: StateDict, model: nn.Module) -> StateDict:
    c = model.config  # type: ignore[union-attr]
    if c.tie_embeddings:
        state = {n: t for n, t in state.items() if n != "lm_head.weight"}
    rows = (c.n_head * c.head_dim, c.n_kv_head * c.head_dim, c.n_kv_head * c.head_dim)
    return names_to_hf(state, NAMES, fused_rows={"attn.c_attn": rows})


def mismatch(model: nn.Module) -> str | None:
    """Why ``model`` cannot be written as Llama, or None when it can."""
    wanted = {"position": "rotary", "norm": "rmsnorm", "mlp": "swiglu"}
    return config_mismatch(model, "Llama", lambda c: wanted)


def config_to_hf(model: nn.Module) -> dict[str, Any]:
    c = model.config  # type: ignore[union-attr]
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        **fields_to_hf(c, FIELDS),
        "hidden_act": "silu",
        "rope_theta": c.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_theta},
        "attention_bias": c.bias,
        "mlp_bias": c.bias,
        "attention_dropout": c.dropout,
        "bos_token_id": None,
        "eos_token_id": None,
    }


ADAPTER = Adapter(
    model_type="llama",
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
