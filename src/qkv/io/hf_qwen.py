"""Hugging Face Qwen2 / Qwen2.5 (``Qwen2ForCausalLM``) and Qwen3 (``Qwen3ForCausalLM``) <->
qkv ``GPT``. Tensor names are Llama's (Qwen3 adds ``self_attn.{q,k}_norm`` -> ``attn.{q,k}_norm``).

Qwen2: biases on q/k/v only (``qkv_bias=True``, o_proj and MLP without). Qwen3: an RMSNorm on
every q and k head (``qk_norm``), biases on every attention projection when
``attention_bias``. Both may slide a window on the layers ``layer_types`` (or, in older
configs, ``use_sliding_window`` from ``max_window_layers`` on) names "sliding_attention".
"""

from __future__ import annotations

from typing import Any

from torch import nn

from qkv.io.hf_decoder import (
    decoder_adapter,
    family_mismatch,
    layer_types_to_hf,
    llama_config,
    llama_fields_to_hf,
    read_layer_types,
)
from qkv.io.hf_llama import NAMES


def _windows(hf: dict[str, Any], model_type: str) -> dict[str, Any]:
    types = read_layer_types(hf, model_type)
    layers = int(hf.get("num_hidden_layers", 32))
    if types is None:
        first = int(hf.get("max_window_layers", layers))
        sliding = bool(hf.get("use_sliding_window"))
        types = tuple("sliding" if sliding and i >= first else "global" for i in range(layers))
    window = hf.get("sliding_window") if "sliding" in types else None
    return {"layer_types": types, "sliding_window": window}


def qwen2_config(hf: dict[str, Any]) -> tuple[Any, str]:
    config = llama_config(hf, "qwen2", qkv_bias=True, attn_out_bias=False, **_windows(hf, "qwen2"))
    return config, (hf.get("architectures") or ["Qwen2ForCausalLM"])[0]


def qwen3_config(hf: dict[str, Any]) -> tuple[Any, str]:
    config = llama_config(hf, "qwen3", qk_norm=True, **_windows(hf, "qwen3"))
    return config, (hf.get("architectures") or ["Qwen3ForCausalLM"])[0]


def _wanted(c: Any) -> dict[str, Any]:
    return {"position": "rotary", "norm": "rmsnorm", "mlp": "swiglu", "mlp_bias": False}


def qwen2_mismatch(model: nn.Module) -> str | None:
    """Why ``model`` cannot be written as Qwen2 (q/k/v biases only, no q/k norm)."""
    wanted = {"qkv_bias": True, "attn_out_bias": False}
    return family_mismatch(model, "Qwen2", lambda c: _wanted(c) | wanted)


def qwen3_mismatch(model: nn.Module) -> str | None:
    """Why ``model`` cannot be written as Qwen3 (q/k RMSNorm, all-or-no attention biases)."""
    return family_mismatch(
        model, "Qwen3", lambda c: _wanted(c) | {"qk_norm": True, "attn_out_bias": c.qkv_bias}
    )


def _to_hf(c: Any, model_type: str, architecture: str) -> dict[str, Any]:
    sliding = "sliding" in c.layer_types
    return llama_fields_to_hf(c, model_type, architecture) | {
        "hidden_act": "silu",
        "layer_types": layer_types_to_hf(c),
        "use_sliding_window": sliding,
        "sliding_window": c.sliding_window if sliding else None,
        "max_window_layers": c.n_layer,
    }


def qwen2_to_hf(model: nn.Module) -> dict[str, Any]:
    return _to_hf(model.config, "qwen2", "Qwen2ForCausalLM")  # type: ignore[arg-type]


def qwen3_to_hf(model: nn.Module) -> dict[str, Any]:
    c = model.config
    return _to_hf(c, "qwen3", "Qwen3ForCausalLM") | {"attention_bias": c.qkv_bias}  # type: ignore[union-attr]


QWEN2 = decoder_adapter(
    model_type="qwen2",
    architectures=("Qwen2ForCausalLM",),
    names=NAMES,
    config_from_hf=qwen2_config,
    config_to_hf=qwen2_to_hf,
    mismatch=qwen2_mismatch,
)
QWEN3 = decoder_adapter(
    model_type="qwen3",
    architectures=("Qwen3ForCausalLM",),
    names=NAMES,
    config_from_hf=qwen3_config,
    config_to_hf=qwen3_to_hf,
    mismatch=qwen3_mismatch,
)
