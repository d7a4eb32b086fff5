"""What the Llama-shaped decoder families share (Llama, Mistral, Qwen2/3, Gemma 2/3, Phi-3,
GPT-NeoX): reading RoPE, sliding-window and layer-type fields of an HF ``config.json``,
refusing the options qkv does not implement (naming the field), writing them back, and the
"every knob matches" test that picks a family when saving.

A family adapter is then data (its :class:`~qkv.io.adapter.NameMap`, the knobs it fixes) plus
the few lines that differ; :func:`decoder_adapter` assembles the :class:`Adapter`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from qkv.io.adapter import (
    Adapter,
    NameMap,
    StateDict,
    add_prefix,
    config_mismatch,
    fields_to_hf,
    names_from_hf,
    names_to_hf,
    tie_head,
    unsupported,
)

# The Llama-shaped decoders' config.json fields (qkv field -> HF names, default).
LLAMA_FIELDS = {
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

# Every family knob of GPTConfig at its "off" value: a family states the ones it turns on,
# and saving checks all of them, so a model is written only as a family that reproduces it.
KNOBS_OFF: dict[str, Any] = {
    "rotary_pct": 1.0,
    "qk_norm": False,
    "parallel_residual": False,
    "sandwich_norm": False,
    "embed_scale": False,
    "rope_local_theta": None,
    "attn_softcap": None,
    "final_softcap": None,
    "query_pre_attn_scalar": None,
}
_HF_LAYER = {"full_attention": "global", "sliding_attention": "sliding"}
_QKV_LAYER = {qkv: hf for hf, qkv in _HF_LAYER.items()}


def refuse_values(hf: dict[str, Any], model_type: str, allowed: Mapping[str, tuple]) -> None:
    """ValueError naming the first field whose value qkv cannot reproduce
    (``allowed``: field -> the values qkv implements; an absent field passes)."""
    for field, values in allowed.items():
        if field in hf and hf[field] not in values:
            raise unsupported(model_type, field, hf[field], " or ".join(map(repr, values)))


def _rope_dict(hf: dict[str, Any]) -> dict[str, Any]:
    rope = dict(hf.get("rope_scaling") or {})
    rope.update(hf.get("rope_parameters") or {})
    return rope


def rope_fields(
    rope: dict[str, Any], model_type: str, *, theta_default: float = 10000.0
) -> dict[str, Any]:
    """GPTConfig's RoPE fields from one HF rope dict (``rope_parameters`` / ``rope_scaling``):
    default, linear and llama3 types; any other type is refused by name."""
    kind = rope.get("rope_type", rope.get("type", "default"))
    out: dict[str, Any] = {"rope_theta": float(rope.get("rope_theta", theta_default))}
    if kind == "default":
        return out
    if kind not in ("linear", "llama3"):
        raise unsupported(model_type, "rope_type", kind, "'default', 'linear' or 'llama3'")
    if rope.get("attention_factor") not in (None, 1.0):
        raise unsupported(model_type, "rope attention_factor", rope["attention_factor"], "1.0")

    def need(key: str) -> Any:
        if key not in rope:
            raise ValueError(
                f"{model_type} rope_type={kind!r} needs rope field {key!r}, which config.json "
                "lacks; add it (see the model card)"
            )
        return rope[key]

    out |= {"rope_scaling": kind, "rope_factor": float(need("factor"))}
    if kind == "llama3":
        out |= {
            "rope_low_freq_factor": float(need("low_freq_factor")),
            "rope_high_freq_factor": float(need("high_freq_factor")),
            "rope_original_max_positions": int(need("original_max_position_embeddings")),
        }
    return out


def read_rope(hf: dict[str, Any], model_type: str) -> dict[str, Any]:
    """RoPE fields of a one-rotary family (top-level ``rope_theta`` read as a fallback)."""
    fields = rope_fields(
        _rope_dict(hf), model_type, theta_default=float(hf.get("rope_theta", 10000.0))
    )
    factor = _rope_dict(hf).get("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0))
    if factor != 1.0:
        fields["rotary_pct"] = float(factor)
    return fields


def rope_to_hf(c: Any) -> dict[str, Any]:
    """The HF ``rope_parameters`` dict of a qkv config's global rotary."""
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": c.rope_theta}
    if c.rope_scaling != "none":
        rope |= {"rope_type": c.rope_scaling, "factor": c.rope_factor}
    if c.rope_scaling == "llama3":
        rope |= {
            "low_freq_factor": c.rope_low_freq_factor,
            "high_freq_factor": c.rope_high_freq_factor,
            "original_max_position_embeddings": c.rope_original_max_positions,
        }
    if c.rotary_pct != 1.0:
        rope["partial_rotary_factor"] = c.rotary_pct
    return rope


def read_layer_types(hf: dict[str, Any], model_type: str) -> tuple[str, ...] | None:
    """qkv ``layer_types`` from HF's ("full_attention" / "sliding_attention"), or None."""
    types = hf.get("layer_types")
    if types is None:
        return None
    unknown = sorted(set(types) - set(_HF_LAYER))
    if unknown:
        raise unsupported(
            model_type, "layer_types", unknown[0], "'full_attention', 'sliding_attention'"
        )
    return tuple(_HF_LAYER[t] for t in types)


def layer_types_to_hf(c: Any) -> list[str]:
    return [_QKV_LAYER[t] for t in c.layer_types]


def family_mismatch(
    model: nn.Module, family: str, wanted: Callable[[Any], dict[str, Any]]
) -> str | None:
    """Why ``model`` cannot be written as ``family``: every knob of :data:`KNOBS_OFF` that
    ``wanted`` does not set must be off; the ones it sets must match."""
    return config_mismatch(model, family, lambda c: KNOBS_OFF | wanted(c))


def causal_lm_names(state: StateDict, head: str) -> StateDict:
    """``*Model`` checkpoints lack the ``model.`` prefix of ``*ForCausalLM``'s names."""
    return add_prefix(state, "model.", except_=("lm_head.",))


def ignored_buffers(name: str) -> bool:
    return name.endswith("rotary_emb.inv_freq")


def optional_head(name: str, config: Any) -> bool:
    return name == "lm_head.weight" and config.tie_embeddings


def qkv_rows(c: Any) -> tuple[int, int, int]:
    """Rows of the fused c_attn per part: (Hq·D, Hkv·D, Hkv·D)."""
    return (c.n_head * c.head_dim, c.n_kv_head * c.head_dim, c.n_kv_head * c.head_dim)


def decoder_adapter(
    *,
    model_type: str,
    architectures: tuple[str, ...],
    names: NameMap,
    config_from_hf: Callable[[dict[str, Any]], tuple[Any, str]],
    config_to_hf: Callable[[nn.Module], dict[str, Any]],
    mismatch: Callable[[nn.Module], str | None],
    from_hf: Callable[[StateDict, Any], StateDict] = lambda state, config: state,
    to_hf: Callable[[StateDict, Any], StateDict] = lambda state, config: state,
) -> Adapter:
    """The :class:`Adapter` of a decoder family whose names ``names`` converts; ``from_hf``
    runs on the HF tensors before renaming and ``to_hf`` after (splits/joins of fused
    tensors such as Phi-3's gate_up_proj)."""

    def state_from_hf(state: StateDict, config: Any) -> StateDict:
        out = names_from_hf(from_hf(state, config), names)
        return tie_head(
            out,
            head="lm_head.weight",
            embeddings="transformer.wte.weight",
            tied=config.tie_embeddings,
        )

    def state_to_hf(state: StateDict, model: nn.Module) -> StateDict:
        c = model.config  # type: ignore[union-attr]
        if c.tie_embeddings:
            state = {n: t for n, t in state.items() if n != "lm_head.weight"}
        fused = {module: qkv_rows(c) for module in names.fused}
        return to_hf(names_to_hf(state, names, fused_rows=fused), c)

    return Adapter(
        model_type=model_type,
        architectures=architectures,
        config_from_hf=config_from_hf,
        config_to_hf=config_to_hf,
        state_from_hf=state_from_hf,
        state_to_hf=state_to_hf,
        canonical_names=causal_lm_names,
        ignored=ignored_buffers,
        optional=optional_head,
        mismatch=mismatch,
    )


def llama_fields_to_hf(c: Any, model_type: str, architecture: str) -> dict[str, Any]:
    """The config.json entries every Llama-shaped family writes."""
    return {
        "model_type": model_type,
        "architectures": [architecture],
        **fields_to_hf(c, LLAMA_FIELDS),
        "rope_theta": c.rope_theta,
        "rope_parameters": rope_to_hf(c),
        "attention_dropout": c.dropout,
        "bos_token_id": None,
        "eos_token_id": None,
        "pad_token_id": None,
    }


def llama_config(hf: dict[str, Any], model_type: str, **knobs: Any) -> Any:
    """The GPTConfig of a Llama-shaped HF config (rotary, RMSNorm, gated MLP, no norm bias)
    with ``knobs`` on top; ``hidden_act`` must be SiLU unless ``knobs`` choose the MLP."""
    from qkv.io.adapter import fields_from_hf
    from qkv.models import GPTConfig

    if "mlp" not in knobs:
        refuse_values(hf, model_type, {"hidden_act": ("silu",)})
    refuse_values(
        hf, model_type, {"pretraining_tp": (1,), "use_bidirectional_attention": (None, False)}
    )
    fields = fields_from_hf(hf, LLAMA_FIELDS)
    attention_bias = bool(hf.get("attention_bias", False))
    mlp_bias = bool(hf.get("mlp_bias", False))
    args: dict[str, Any] = {
        **fields,
        "tie_embeddings": bool(fields["tie_embeddings"]),
        "position": "rotary",
        "norm": "rmsnorm",
        "mlp": "swiglu",
        "bias": attention_bias and mlp_bias,  # RMSNorm has none: bias means every Linear's
        "qkv_bias": attention_bias,
        "attn_out_bias": attention_bias,
        "mlp_bias": mlp_bias,
        "dropout": float(hf.get("attention_dropout", 0.0)),
        **read_rope(hf, model_type),
    }
    return GPTConfig(**args | knobs)
