"""Hugging Face Gemma 2 (``Gemma2ForCausalLM``) and Gemma 3 text (``Gemma3ForCausalLM``,
model_type ``gemma3_text``) <-> qkv ``GPT``.

Both: Gemma's (1 + w) RMSNorm (``norm="gemma_rmsnorm"``, the stored weights copy as they are),
sandwich norms, embeddings times √C, tanh-GELU gated MLP (GeGLU), attention scale
1/√query_pre_attn_scalar, sliding-window layers by ``layer_types``, tied head. Gemma 2 adds
attention and final-logit soft-caps; Gemma 3 q/k norms and a separate RoPE base for the
sliding layers (``rope_local_theta``). Renames (beside Llama's attention and MLP names)::

    model.layers.{i}.input_layernorm            transformer.h.{i}.ln_1
    model.layers.{i}.post_attention_layernorm   transformer.h.{i}.post_attn_norm
    model.layers.{i}.pre_feedforward_layernorm  transformer.h.{i}.ln_2
    model.layers.{i}.post_feedforward_layernorm transformer.h.{i}.post_mlp_norm
"""

from __future__ import annotations

from typing import Any

from torch import nn

from qkv.io.adapter import NameMap
from qkv.io.hf_decoder import (
    decoder_adapter,
    family_mismatch,
    layer_types_to_hf,
    llama_config,
    llama_fields_to_hf,
    read_layer_types,
    refuse_values,
    rope_fields,
    rope_to_hf,
)

NAMES = NameMap(
    names={
        "model.embed_tokens.weight": "transformer.wte.weight",
        "model.norm.weight": "transformer.ln_f.weight",
    },
    hf_layer="model.layers.{}.",
    qkv_layer="transformer.h.{}.",
    modules={
        "input_layernorm": "ln_1",
        "post_attention_layernorm": "post_attn_norm",
        "pre_feedforward_layernorm": "ln_2",
        "post_feedforward_layernorm": "post_mlp_norm",
        "self_attn.o_proj": "attn.c_proj",
        "self_attn.q_norm": "attn.q_norm",
        "self_attn.k_norm": "attn.k_norm",
    },
    fused={"attn.c_attn": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")},
)
_GEMMA = {
    "norm": "gemma_rmsnorm",
    "mlp": "geglu",
    "sandwich_norm": True,
    "embed_scale": True,
}


def _common(hf: dict[str, Any], model_type: str, pattern: int) -> dict[str, Any]:
    act = hf.get("hidden_activation") or hf.get("hidden_act") or "gelu_pytorch_tanh"
    if act not in ("gelu_pytorch_tanh", "gelu_tanh"):
        raise ValueError(
            f"hidden_activation={act!r} is not supported for {model_type} by qkv (supported: "
            "'gelu_pytorch_tanh'); the converted model would not match the original"
        )
    layers = int(hf.get("num_hidden_layers", 26))
    types = read_layer_types(hf, model_type) or tuple(
        "sliding" if (i + 1) % pattern else "global" for i in range(layers)
    )
    window = hf.get("sliding_window") if "sliding" in types else None
    return _GEMMA | {
        "layer_types": types,
        "sliding_window": window,
        "query_pre_attn_scalar": float(hf.get("query_pre_attn_scalar", 256)),
        "attn_softcap": hf.get("attn_logit_softcapping"),
        "final_softcap": hf.get("final_logit_softcapping"),
        "tie_embeddings": bool(hf.get("tie_word_embeddings", True)),
    }


def gemma2_config(hf: dict[str, Any]) -> tuple[Any, str]:
    config = llama_config(hf, "gemma2", **_common(hf, "gemma2", 2))
    return config, (hf.get("architectures") or ["Gemma2ForCausalLM"])[0]


def gemma3_config(hf: dict[str, Any]) -> tuple[Any, str]:
    refuse_values(hf, "gemma3_text", {"use_bidirectional_attention": (None, False)})
    rope = dict(hf.get("rope_parameters") or {})
    knobs = _common(hf, "gemma3_text", int(hf.get("_sliding_window_pattern", 6)))
    if "full_attention" in rope:  # transformers 5: one rope dict per layer type
        knobs |= rope_fields(rope["full_attention"], "gemma3_text", theta_default=1e6)
        local = rope.get("sliding_attention", {"rope_theta": 10000.0})
    else:  # transformers 4: rope_theta / rope_scaling for global, rope_local_base_freq
        legacy = dict(hf.get("rope_scaling") or {})
        legacy["rope_theta"] = hf.get("rope_theta", 1e6)
        knobs |= rope_fields(legacy, "gemma3_text")
        local = {"rope_theta": hf.get("rope_local_base_freq", 10000.0)}
    if local.get("rope_type", "default") != "default":
        raise ValueError(
            f"rope_type={local['rope_type']!r} for gemma3_text sliding layers is not supported "
            "by qkv (supported: 'default'); the converted model would not match the original"
        )
    knobs |= {"rope_local_theta": float(local.get("rope_theta", 10000.0)), "qk_norm": True}
    safe = {k: v for k, v in hf.items() if k not in ("rope_parameters", "rope_scaling")}
    config = llama_config(safe, "gemma3_text", **knobs)
    return config, (hf.get("architectures") or ["Gemma3ForCausalLM"])[0]


def _wanted(c: Any) -> dict[str, Any]:
    return _GEMMA | {
        "position": "rotary",
        "attn_out_bias": c.qkv_bias,
        "mlp_bias": False,
        "tie_embeddings": True,
    }


def gemma2_mismatch(model: nn.Module) -> str | None:
    """Why ``model`` cannot be written as Gemma 2."""
    return family_mismatch(
        model,
        "Gemma2",
        lambda c: (
            _wanted(c)
            | {
                "query_pre_attn_scalar": c.query_pre_attn_scalar or float(c.head_dim),
                "attn_softcap": c.attn_softcap,
                "final_softcap": c.final_softcap,
            }
        ),
    )


def gemma3_mismatch(model: nn.Module) -> str | None:
    """Why ``model`` cannot be written as Gemma 3 text (q/k norms, no soft-caps needed)."""
    return family_mismatch(
        model,
        "Gemma3",
        lambda c: (
            _wanted(c)
            | {
                "qk_norm": True,
                "query_pre_attn_scalar": c.query_pre_attn_scalar or float(c.head_dim),
                "rope_local_theta": c.rope_local_theta or c.rope_theta,
                "attn_softcap": c.attn_softcap,
                "final_softcap": c.final_softcap,
            }
        ),
    )


def _to_hf(c: Any, model_type: str, architecture: str) -> dict[str, Any]:
    return llama_fields_to_hf(c, model_type, architecture) | {
        "hidden_activation": "gelu_pytorch_tanh",
        "attention_bias": c.qkv_bias,
        "layer_types": layer_types_to_hf(c),
        "sliding_window": c.sliding_window,
        "query_pre_attn_scalar": _int_if_whole(c.query_pre_attn_scalar or c.head_dim),
        "attn_logit_softcapping": c.attn_softcap,
        "final_logit_softcapping": c.final_softcap,
    }


def _int_if_whole(value: float) -> float | int:
    """transformers 5 types query_pre_attn_scalar as int: write 256, not 256.0."""
    return int(value) if float(value).is_integer() else value


def gemma2_to_hf(model: nn.Module) -> dict[str, Any]:
    return _to_hf(model.config, "gemma2", "Gemma2ForCausalLM")  # type: ignore[arg-type]


def gemma3_to_hf(model: nn.Module) -> dict[str, Any]:
    c: Any = model.config
    local = {"rope_type": "default", "rope_theta": c.rope_local_theta or c.rope_theta}
    out = _to_hf(c, "gemma3_text", "Gemma3ForCausalLM")
    out.pop("rope_theta")
    out["rope_parameters"] = {"full_attention": rope_to_hf(c), "sliding_attention": local}
    return out


GEMMA2 = decoder_adapter(
    model_type="gemma2",
    architectures=("Gemma2ForCausalLM",),
    names=NAMES,
    config_from_hf=gemma2_config,
    config_to_hf=gemma2_to_hf,
    mismatch=gemma2_mismatch,
)
GEMMA3 = decoder_adapter(
    model_type="gemma3_text",
    architectures=("Gemma3ForCausalLM",),
    names=NAMES,
    config_from_hf=gemma3_config,
    config_to_hf=gemma3_to_hf,
    mismatch=gemma3_mismatch,
)
