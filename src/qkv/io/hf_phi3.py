"""Hugging Face Phi-3 (``Phi3ForCausalLM``) <-> qkv ``GPT``: a Llama with fused projections
and an optional sliding window on every layer. Renames beside Llama's::

    model.layers.{i}.self_attn.qkv_proj.weight  transformer.h.{i}.attn.c_attn.weight (rows q|k|v)
    model.layers.{i}.mlp.gate_up_proj.weight    transformer.h.{i}.mlp.{gate,up}_proj.weight
                                                (rows [gate | up], split on load, joined on save)

Phi-3's "longrope" / "su" RoPE scaling (the 128k models) is refused by name.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from qkv.io.adapter import NameMap, StateDict
from qkv.io.hf_decoder import decoder_adapter, family_mismatch, llama_config, llama_fields_to_hf

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
        "self_attn.qkv_proj": "attn.c_attn",
    },
)
_GATE_UP = re.compile(r"^(.*\.mlp\.)gate_up_proj\.weight$")
_GATE = re.compile(r"^(.*\.mlp\.)gate_proj\.weight$")


def split_gate_up(state: StateDict, config: Any) -> StateDict:
    """gate_up_proj (2·I, C) -> gate_proj (I, C) and up_proj (I, C)."""
    out: StateDict = {}
    for name, tensor in state.items():
        match = _GATE_UP.match(name)
        if match is None:
            out[name] = tensor
            continue
        gate, up = tensor.chunk(2, dim=0)  # rows [gate | up]
        out[match.group(1) + "gate_proj.weight"] = gate
        out[match.group(1) + "up_proj.weight"] = up
    return out


def join_gate_up(state: StateDict, config: Any) -> StateDict:
    """gate_proj and up_proj -> gate_up_proj (2·I, C), rows [gate | up]."""
    out: StateDict = {}
    for name, tensor in state.items():
        if name.endswith(".mlp.up_proj.weight"):
            continue
        match = _GATE.match(name)
        if match is None:
            out[name] = tensor
            continue
        up = state[match.group(1) + "up_proj.weight"]
        out[match.group(1) + "gate_up_proj.weight"] = torch.cat((tensor, up), dim=0)
    return out


def config_from_hf(hf: dict[str, Any]) -> tuple[Any, str]:
    window = hf.get("sliding_window")
    config = llama_config(hf, "phi3", sliding_window=window, attn_out_bias=False, qkv_bias=False)
    return config, (hf.get("architectures") or ["Phi3ForCausalLM"])[0]


def mismatch(model: nn.Module) -> str | None:
    """Why ``model`` cannot be written as Phi-3 (no biases, every layer sliding or none)."""
    return family_mismatch(
        model,
        "Phi3",
        lambda c: {
            "position": "rotary",
            "norm": "rmsnorm",
            "mlp": "swiglu",
            "qkv_bias": False,
            "attn_out_bias": False,
            "mlp_bias": False,
            "rope_scaling": "none",
            "rotary_pct": c.rotary_pct,
            "layer_types": ("sliding" if c.sliding_window else "global",) * c.n_layer,
        },
    )


def config_to_hf(model: nn.Module) -> dict[str, Any]:
    c: Any = model.config
    return llama_fields_to_hf(c, "phi3", "Phi3ForCausalLM") | {
        "hidden_act": "silu",
        "sliding_window": c.sliding_window,
        "original_max_position_embeddings": c.n_positions,
        "resid_pdrop": c.dropout,
        "embd_pdrop": c.dropout,
    }


ADAPTER = decoder_adapter(
    model_type="phi3",
    architectures=("Phi3ForCausalLM",),
    names=NAMES,
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    mismatch=mismatch,
    from_hf=split_gate_up,
    to_hf=join_gate_up,
)
