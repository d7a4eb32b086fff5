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

from qkv.io.adapter import Adapter, StateDict, hf_value, unsupported

ARCHITECTURES = ("GPT2LMHeadModel", "GPT2Model")
_CONV1D = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")
_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}


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
    n_embd = hf_value(hf, "n_embd", "hidden_size", default=768)
    config = GPTConfig(
        vocab_size=hf_value(hf, "vocab_size", default=50257),
        n_positions=hf_value(hf, "n_positions", "max_position_embeddings", default=1024),
        n_layer=hf_value(hf, "n_layer", "num_hidden_layers", default=12),
        n_head=hf_value(hf, "n_head", "num_attention_heads", default=12),
        n_embd=n_embd,
        intermediate_size=hf_value(hf, "n_inner", default=4 * n_embd),
        norm_eps=hf_value(hf, "layer_norm_epsilon", default=1e-5),
        activation=_ACTIVATIONS[activation],
        bias=True,
        tie_embeddings=bool(hf.get("tie_word_embeddings", True)),
        dropout=float(hf_value(hf, "resid_pdrop", default=0.0)),
        initializer_range=hf_value(hf, "initializer_range", default=0.02),
    )
    architecture = (hf.get("architectures") or ["GPT2LMHeadModel"])[0]
    if architecture == "GPT2Model" and not config.tie_embeddings:
        # A bare GPT2Model has no head: qkv's GPT reads out through the embeddings.
        config = config.replace(tie_embeddings=True)
    return config, architecture


def build_model(config: Any, head: str) -> nn.Module:
    from qkv.models import GPT

    return GPT(config)


def canonical_names(state: StateDict, head: str) -> StateDict:
    """GPT2Model checkpoints lack the ``transformer.`` prefix of GPT2LMHeadModel's names."""
    out = {}
    for name, tensor in state.items():
        if name != "lm_head.weight" and not name.startswith("transformer."):
            name = f"transformer.{name}"
        out[name] = tensor
    return out


def ignored(name: str) -> bool:
    # Causal-mask buffers that older transformers versions saved.
    return re.search(r"\.attn\.(bias|masked_bias)$", name) is not None


def optional(name: str, config: Any) -> bool:
    return name == "lm_head.weight" and config.tie_embeddings


def state_from_hf(state: StateDict, config: Any) -> StateDict:
    out: StateDict = {}
    for name, tensor in state.items():
        if name.endswith(_CONV1D):
            tensor = tensor.t().contiguous()  # Conv1D (in, out) -> Linear (out, in)
        out[name] = tensor
    if config.tie_embeddings or "lm_head.weight" not in out:
        out["lm_head.weight"] = out["transformer.wte.weight"]
    return out


def state_to_hf(state: StateDict, model: nn.Module) -> StateDict:
    out: StateDict = {}
    for name, tensor in state.items():
        if name == "lm_head.weight" and model.config.tie_embeddings:  # type: ignore[union-attr]
            continue
        if name.endswith(_CONV1D):
            tensor = tensor.t().contiguous()  # Linear (out, in) -> Conv1D (in, out)
        out[name] = tensor
    return out


def mismatch(model: nn.Module) -> str | None:
    """Why ``model`` cannot be written as GPT-2, or None when it can."""
    from qkv.models import GPT

    if not isinstance(model, GPT):
        return f"{type(model).__name__} is not a qkv GPT"
    c = model.config
    wanted = {
        "position": "learned",
        "norm": "layernorm",
        "mlp": "gelu",
        "bias": True,
        "n_kv_head": c.n_head,
        "head_dim": c.n_embd // c.n_head,
    }
    wrong = [
        f"{k}={getattr(c, k)!r} (GPT-2 has {v!r})" for k, v in wanted.items() if getattr(c, k) != v
    ]
    return "; ".join(wrong) or None


def config_to_hf(model: nn.Module) -> dict[str, Any]:
    c = model.config  # type: ignore[union-attr]
    eos = 50256 if c.vocab_size > 50256 else None
    return {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": c.vocab_size,
        "n_positions": c.n_positions,
        "n_embd": c.n_embd,
        "n_layer": c.n_layer,
        "n_head": c.n_head,
        "n_inner": c.intermediate_size,
        "activation_function": "gelu_new" if c.activation == "gelu_tanh" else "gelu",
        "layer_norm_epsilon": c.norm_eps,
        "resid_pdrop": c.dropout,
        "embd_pdrop": c.dropout,
        "attn_pdrop": c.dropout,
        "initializer_range": c.initializer_range,
        "scale_attn_weights": True,
        "tie_word_embeddings": c.tie_embeddings,
        "bos_token_id": eos,
        "eos_token_id": eos,
    }


ADAPTER = Adapter(
    model_type="gpt2",
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
