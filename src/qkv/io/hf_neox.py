"""Hugging Face GPT-NeoX / Pythia (``GPTNeoXForCausalLM``) <-> qkv ``GPT``.

GPT-NeoX: LayerNorm with biases, exact or tanh GELU MLP with biases, rotary on the first
``rotary_pct`` of each head (partial rotary, "rotate half" layout), parallel residual
(``use_parallel_residual``), untied ``embed_out``. Renames::

    gpt_neox.embed_in.weight                          transformer.wte.weight
    gpt_neox.layers.{i}.input_layernorm.*             transformer.h.{i}.ln_1.*
    gpt_neox.layers.{i}.post_attention_layernorm.*    transformer.h.{i}.ln_2.*
    gpt_neox.layers.{i}.attention.query_key_value.*   transformer.h.{i}.attn.c_attn.*
    gpt_neox.layers.{i}.attention.dense.*             transformer.h.{i}.attn.c_proj.*
    gpt_neox.layers.{i}.mlp.dense_h_to_4h.*           transformer.h.{i}.mlp.c_fc.*
    gpt_neox.layers.{i}.mlp.dense_4h_to_h.*           transformer.h.{i}.mlp.c_proj.*
    gpt_neox.final_layer_norm.*                       transformer.ln_f.*
    embed_out.weight                                  lm_head.weight

NeoX's fused query_key_value rows are grouped by head, [h0: q k v | h1: q k v | ...];
qkv's c_attn rows are grouped by part, [q h0 h1 ... | k ... | v ...]: rows are permuted
both ways.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from torch import Tensor, nn

from qkv.io.adapter import (
    NameMap,
    StateDict,
    add_prefix,
    fields_from_hf,
    fields_to_hf,
)
from qkv.io.hf_decoder import decoder_adapter, family_mismatch, read_rope, refuse_values, rope_to_hf

NAMES = NameMap(
    names={
        "gpt_neox.embed_in.weight": "transformer.wte.weight",
        "gpt_neox.final_layer_norm.weight": "transformer.ln_f.weight",
        "gpt_neox.final_layer_norm.bias": "transformer.ln_f.bias",
        "embed_out.weight": "lm_head.weight",
    },
    hf_layer="gpt_neox.layers.{}.",
    qkv_layer="transformer.h.{}.",
    modules={
        "input_layernorm": "ln_1",
        "post_attention_layernorm": "ln_2",
        "attention.query_key_value": "attn.c_attn",
        "attention.dense": "attn.c_proj",
        "mlp.dense_h_to_4h": "mlp.c_fc",
        "mlp.dense_4h_to_h": "mlp.c_proj",
    },
)
FIELDS = {
    "vocab_size": (("vocab_size",), 50432),
    "n_positions": (("max_position_embeddings",), 2048),
    "n_embd": (("hidden_size",), 6144),
    "intermediate_size": (("intermediate_size",), 24576),
    "n_layer": (("num_hidden_layers",), 44),
    "n_head": (("num_attention_heads",), 64),
    "norm_eps": (("layer_norm_eps",), 1e-5),
    "initializer_range": (("initializer_range",), 0.02),
    "tie_embeddings": (("tie_word_embeddings",), False),
}
_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}


def _regroup(tensor: Tensor, heads: int, *, to_qkv: bool) -> Tensor:
    rest = tensor.shape[1:]
    if to_qkv:  # (H·3·D, ...) rows by head -> (3·H·D, ...) rows by part
        grouped = tensor.reshape(heads, 3, -1, *rest)  # (H, 3, D, ...)
        return grouped.transpose(0, 1).reshape(tensor.shape).contiguous()
    grouped = tensor.reshape(3, heads, -1, *rest)  # (3, H, D, ...)
    return grouped.transpose(0, 1).reshape(tensor.shape).contiguous()


def config_from_hf(hf: dict[str, Any]) -> tuple[Any, str]:
    from qkv.models import GPTConfig

    act = hf.get("hidden_act", "gelu")
    if act not in _ACTIVATIONS:
        raise ValueError(
            f"hidden_act={act!r} is not supported for gpt_neox by qkv (supported: "
            f"{', '.join(_ACTIVATIONS)}); the converted model would not match the original"
        )
    refuse_values(hf, "gpt_neox", {"use_qk_norm": (False,)})
    fields = fields_from_hf(hf, FIELDS)
    rope = read_rope(hf, "gpt_neox")
    if "rotary_pct" in hf:  # transformers 4 spelling
        rope["rotary_pct"] = float(hf["rotary_pct"])
    if "rotary_emb_base" in hf and "rope_parameters" not in hf:
        rope["rope_theta"] = float(hf["rotary_emb_base"])
    attention_bias = bool(hf.get("attention_bias", True))
    config = GPTConfig(
        **fields | {"tie_embeddings": bool(fields["tie_embeddings"])},
        position="rotary",
        norm="layernorm",
        mlp="gelu",
        activation=_ACTIVATIONS[act],
        bias=True,
        qkv_bias=attention_bias,
        attn_out_bias=attention_bias,
        parallel_residual=bool(hf.get("use_parallel_residual", True)),
        dropout=float(hf.get("attention_dropout", 0.0)),
        **rope,
    )
    return config, (hf.get("architectures") or ["GPTNeoXForCausalLM"])[0]


def canonical_names(state: StateDict, head: str) -> StateDict:
    return add_prefix(state, "gpt_neox.", except_=("embed_out.",))


def ignored(name: str) -> bool:
    return re.search(r"(attention\.(bias|masked_bias)|rotary_emb\.inv_freq)$", name) is not None


def from_hf(state: StateDict, config: Any) -> StateDict:
    names = {n: t for n, t in state.items() if not ignored(n)}
    out = {}
    for name, tensor in names.items():
        if name.endswith(("query_key_value.weight", "query_key_value.bias")):
            tensor = _regroup(tensor, config.n_head, to_qkv=True)
        out[name] = tensor
    return out


def to_hf(state: StateDict, config: Any) -> StateDict:
    return {
        name: _regroup(t, config.n_head, to_qkv=False) if "query_key_value" in name else t
        for name, t in state.items()
    }


def mismatch(model: nn.Module) -> str | None:
    """Why ``model`` cannot be written as GPT-NeoX."""
    return family_mismatch(
        model,
        "GPT-NeoX",
        lambda c: {
            "position": "rotary",
            "norm": "layernorm",
            "mlp": "gelu",
            "bias": True,
            "attn_out_bias": c.qkv_bias,
            "n_kv_head": c.n_head,
            "head_dim": c.n_embd // c.n_head,
            "rotary_pct": c.rotary_pct,
            "parallel_residual": c.parallel_residual,
            "sliding_window": None,
        },
    )


def config_to_hf(model: nn.Module) -> dict[str, Any]:
    c: Any = model.config
    return {
        "model_type": "gpt_neox",
        "architectures": ["GPTNeoXForCausalLM"],
        **fields_to_hf(c, FIELDS),
        "hidden_act": "gelu" if c.activation == "gelu" else "gelu_new",
        "rope_parameters": rope_to_hf(c) | {"partial_rotary_factor": c.rotary_pct},
        "rotary_pct": c.rotary_pct,
        "rotary_emb_base": c.rope_theta,
        "use_parallel_residual": c.parallel_residual,
        "attention_bias": c.qkv_bias,
        "attention_dropout": c.dropout,
        "hidden_dropout": c.dropout,
        "bos_token_id": None,
        "eos_token_id": None,
        "pad_token_id": None,
    }


_BASE = decoder_adapter(
    model_type="gpt_neox",
    architectures=("GPTNeoXForCausalLM",),
    names=NAMES,
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    mismatch=mismatch,
    from_hf=from_hf,
    to_hf=to_hf,
)
ADAPTER = dataclasses.replace(
    _BASE,
    canonical_names=canonical_names,
    ignored=ignored,
    optional=lambda name, config: name == "embed_out.weight" and config.tie_embeddings,
)
