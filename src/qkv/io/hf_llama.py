"""Hugging Face Llama 1–3.x (``LlamaForCausalLM`` / ``LlamaModel``; SmolLM2 is a Llama) <->
qkv ``GPT`` (Llama options).

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
RoPE scaling "linear" and "llama3" (Llama 3.1+) are read; other rope types are refused.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from qkv.io.adapter import NameMap
from qkv.io.hf_decoder import decoder_adapter, family_mismatch, llama_config, llama_fields_to_hf

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
        "self_attn.q_norm": "attn.q_norm",  # Qwen3
        "self_attn.k_norm": "attn.k_norm",
    },  # mlp.{gate,up,down}_proj keep their names
    fused={"attn.c_attn": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")},
)


def config_from_hf(hf: dict[str, Any]) -> tuple[Any, str]:
    config = llama_config(hf, "llama")
    architecture = (hf.get("architectures") or ["LlamaForCausalLM"])[0]
    if architecture == "LlamaModel":
        config = config.replace(tie_embeddings=True)  # no head: read out through embeddings
    return config, architecture


def mismatch(model: nn.Module) -> str | None:
    """Why ``model`` cannot be written as Llama, or None when it can."""
    return family_mismatch(
        model,
        "Llama",
        lambda c: {
            "position": "rotary",
            "norm": "rmsnorm",
            "mlp": "swiglu",
            "attn_out_bias": c.qkv_bias,
            "sliding_window": None,
        },
    )


def config_to_hf(model: nn.Module) -> dict[str, Any]:
    c = model.config  # type: ignore[union-attr]
    return llama_fields_to_hf(c, "llama", "LlamaForCausalLM") | {
        "hidden_act": "silu",
        "attention_bias": c.qkv_bias,
        "mlp_bias": c.mlp_bias,
    }


ADAPTER = decoder_adapter(
    model_type="llama",
    architectures=ARCHITECTURES,
    names=NAMES,
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    mismatch=mismatch,
)
