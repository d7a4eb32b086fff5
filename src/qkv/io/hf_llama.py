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

import re
from typing import Any

import torch
from torch import nn

from qkv.io.adapter import Adapter, StateDict, hf_value, unsupported

ARCHITECTURES = ("LlamaForCausalLM", "LlamaModel")
_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)$")
_RENAMES = {
    "input_layernorm.weight": "ln_1.weight",
    "post_attention_layernorm.weight": "ln_2.weight",
    "self_attn.o_proj.weight": "attn.c_proj.weight",
    "self_attn.o_proj.bias": "attn.c_proj.bias",
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
    heads = hf_value(hf, "num_attention_heads", default=32)
    hidden = hf_value(hf, "hidden_size", default=4096)
    config = GPTConfig(
        vocab_size=hf_value(hf, "vocab_size", default=32000),
        n_positions=hf_value(hf, "max_position_embeddings", default=2048),
        n_layer=hf_value(hf, "num_hidden_layers", default=32),
        n_head=heads,
        n_kv_head=hf_value(hf, "num_key_value_heads", default=heads),
        n_embd=hidden,
        head_dim=hf_value(hf, "head_dim", default=hidden // heads),
        intermediate_size=hf_value(hf, "intermediate_size", default=11008),
        position="rotary",
        rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
        norm="rmsnorm",
        norm_eps=hf_value(hf, "rms_norm_eps", default=1e-6),
        mlp="swiglu",
        bias=attention_bias,
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        dropout=float(hf.get("attention_dropout", 0.0)),
        initializer_range=hf_value(hf, "initializer_range", default=0.02),
    )
    architecture = (hf.get("architectures") or ["LlamaForCausalLM"])[0]
    if architecture == "LlamaModel":
        config = config.replace(tie_embeddings=True)  # no head: read out through embeddings
    return config, architecture


def build_model(config: Any, head: str) -> nn.Module:
    from qkv.models import GPT

    return GPT(config)


def canonical_names(state: StateDict, head: str) -> StateDict:
    """LlamaModel checkpoints lack the ``model.`` prefix of LlamaForCausalLM's names."""
    out = {}
    for name, tensor in state.items():
        if name != "lm_head.weight" and not name.startswith("model."):
            name = f"model.{name}"
        out[name] = tensor
    return out


def ignored(name: str) -> bool:
    return name.endswith("rotary_emb.inv_freq")


def optional(name: str, config: Any) -> bool:
    return name == "lm_head.weight" and config.tie_embeddings


def state_from_hf(state: StateDict, config: Any) -> StateDict:
    out: StateDict = {}
    for name, tensor in state.items():
        if name == "model.embed_tokens.weight":
            out["transformer.wte.weight"] = tensor
        elif name == "model.norm.weight":
            out["transformer.ln_f.weight"] = tensor
        elif name == "lm_head.weight":
            out[name] = tensor
        elif match := _LAYER.match(name):
            index, rest = match.groups()
            prefix = f"transformer.h.{index}."
            if rest.startswith("self_attn.q_proj."):
                kind = rest.rsplit(".", 1)[1]  # weight / bias
                parts = [state[f"model.layers.{index}.self_attn.{p}_proj.{kind}"] for p in "qkv"]
                out[f"{prefix}attn.c_attn.{kind}"] = torch.cat(parts, dim=0)  # rows q | k | v
            elif rest.startswith(("self_attn.k_proj.", "self_attn.v_proj.")):
                continue  # fused with q_proj above
            else:
                out[prefix + _RENAMES.get(rest, rest)] = tensor
        else:
            out[name] = tensor  # unknown names surface as "unexpected" in the caller's check
    if config.tie_embeddings or "lm_head.weight" not in out:
        out["lm_head.weight"] = out["transformer.wte.weight"]
    return out


def state_to_hf(state: StateDict, model: nn.Module) -> StateDict:
    c = model.config  # type: ignore[union-attr]
    back = {v: k for k, v in _RENAMES.items()}
    sizes = (c.n_head * c.head_dim, c.n_kv_head * c.head_dim, c.n_kv_head * c.head_dim)
    out: StateDict = {}
    for name, tensor in state.items():
        if name == "transformer.wte.weight":
            out["model.embed_tokens.weight"] = tensor
        elif name == "transformer.ln_f.weight":
            out["model.norm.weight"] = tensor
        elif name == "lm_head.weight":
            if not c.tie_embeddings:
                out[name] = tensor
        elif match := re.match(r"^transformer\.h\.(\d+)\.(.+)$", name):
            index, rest = match.groups()
            prefix = f"model.layers.{index}."
            if rest.startswith("attn.c_attn."):
                kind = rest.rsplit(".", 1)[1]
                for part, piece in zip("qkv", tensor.split(list(sizes), dim=0)):
                    out[f"{prefix}self_attn.{part}_proj.{kind}"] = piece.contiguous()
            else:
                out[prefix + back.get(rest, rest)] = tensor
        else:
            out[name] = tensor
    return out


def mismatch(model: nn.Module) -> str | None:
    """Why ``model`` cannot be written as Llama, or None when it can."""
    from qkv.models import GPT

    if not isinstance(model, GPT):
        return f"{type(model).__name__} is not a qkv GPT"
    c = model.config
    wanted = {"position": "rotary", "norm": "rmsnorm", "mlp": "swiglu"}
    wrong = [
        f"{k}={getattr(c, k)!r} (Llama has {v!r})" for k, v in wanted.items() if getattr(c, k) != v
    ]
    return "; ".join(wrong) or None


def config_to_hf(model: nn.Module) -> dict[str, Any]:
    c = model.config  # type: ignore[union-attr]
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": c.vocab_size,
        "max_position_embeddings": c.n_positions,
        "hidden_size": c.n_embd,
        "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.n_layer,
        "num_attention_heads": c.n_head,
        "num_key_value_heads": c.n_kv_head,
        "head_dim": c.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": c.norm_eps,
        "rope_theta": c.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_theta},
        "attention_bias": c.bias,
        "mlp_bias": c.bias,
        "attention_dropout": c.dropout,
        "initializer_range": c.initializer_range,
        "tie_word_embeddings": c.tie_embeddings,
        "bos_token_id": None,
        "eos_token_id": None,
    }


ADAPTER = Adapter(
    model_type="llama",
    architectures=ARCHITECTURES,
    config_from_hf=config_from_hf,
    build_model=build_model,
    config_to_hf=config_to_hf,
    state_from_hf=state_from_hf,
    state_to_hf=state_to_hf,
    canonical_names=canonical_names,
    ignored=ignored,
    optional=optional,
    mismatch=mismatch,
)
