"""Hugging Face Mistral (``MistralForCausalLM``) <-> qkv ``GPT``: a Llama whose every layer
attends over a sliding window of ``sliding_window`` keys (None: full attention). Tensor names
are Llama's."""

from __future__ import annotations

from typing import Any

from torch import nn

from qkv.io.hf_decoder import decoder_adapter, family_mismatch, llama_config, llama_fields_to_hf
from qkv.io.hf_llama import NAMES


def config_from_hf(hf: dict[str, Any]) -> tuple[Any, str]:
    window = hf.get("sliding_window")
    config = llama_config(hf, "mistral", sliding_window=window)
    return config, (hf.get("architectures") or ["MistralForCausalLM"])[0]


def mismatch(model: nn.Module) -> str | None:
    """Why ``model`` cannot be written as Mistral (every layer sliding, no biases)."""
    return family_mismatch(
        model,
        "Mistral",
        lambda c: {
            "position": "rotary",
            "norm": "rmsnorm",
            "mlp": "swiglu",
            "qkv_bias": False,
            "attn_out_bias": False,
            "mlp_bias": False,
            "layer_types": ("sliding" if c.sliding_window else "global",) * c.n_layer,
        },
    )


def config_to_hf(model: nn.Module) -> dict[str, Any]:
    c = model.config  # type: ignore[union-attr]
    return llama_fields_to_hf(c, "mistral", "MistralForCausalLM") | {
        "hidden_act": "silu",
        "sliding_window": c.sliding_window,
    }


ADAPTER = decoder_adapter(
    model_type="mistral",
    architectures=("MistralForCausalLM",),
    names=NAMES,
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    mismatch=mismatch,
)
