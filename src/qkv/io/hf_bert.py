"""Hugging Face BERT (``BertModel``, ``BertForMaskedLM``, sentence-transformers directories)
<-> qkv ``Bert`` / ``BertForMaskedLM``.

Renames inside the encoder (``bert.`` prefixed on both sides for the masked-LM model)::

    embeddings.*                                    embeddings.*   (same names)
    encoder.layer.{i}.attention.self.{query,key,value}.*  layers.{i}.attn.c_attn.*  (rows q|k|v)
    encoder.layer.{i}.attention.output.dense.*      layers.{i}.attn.c_proj.*
    encoder.layer.{i}.attention.output.LayerNorm.*  layers.{i}.ln_1.*
    encoder.layer.{i}.intermediate.dense.*          layers.{i}.mlp.c_fc.*
    encoder.layer.{i}.output.dense.*                layers.{i}.mlp.c_proj.*
    encoder.layer.{i}.output.LayerNorm.*            layers.{i}.ln_2.*
    cls.predictions.bias                            cls.predictions.decoder.bias
    (cls.predictions.decoder.weight is tied to the word embeddings on both sides)

qkv's Bert has no pooler (dense + tanh on [CLS]); a checkpoint's ``pooler.*`` tensors are kept
verbatim on the loaded model (``model.hf_extras``) and written back on ``save(format="hf")``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from qkv.io.adapter import (
    Adapter,
    NameMap,
    StateDict,
    add_prefix,
    fields_from_hf,
    fields_to_hf,
    names_from_hf,
    names_to_hf,
    strip_prefix,
    unsupported,
)

ARCHITECTURES = ("BertModel", "BertForMaskedLM")
NAMES = NameMap(
    names={"cls.predictions.bias": "cls.predictions.decoder.bias"},
    hf_layer="encoder.layer.{}.",
    qkv_layer="layers.{}.",
    heads=("", "bert."),  # BertModel names, and BertForMaskedLM's encoder under bert.
    modules={
        "attention.output.dense": "attn.c_proj",
        "attention.output.LayerNorm": "ln_1",
        "intermediate.dense": "mlp.c_fc",
        "output.dense": "mlp.c_proj",
        "output.LayerNorm": "ln_2",
    },
    fused={"attn.c_attn": ("attention.self.query", "attention.self.key", "attention.self.value")},
)
FIELDS = {
    "vocab_size": (("vocab_size",), 30522),
    "n_positions": (("max_position_embeddings",), 512),
    "type_vocab_size": (("type_vocab_size",), 2),
    "n_embd": (("hidden_size",), 768),
    "n_layer": (("num_hidden_layers",), 12),
    "n_head": (("num_attention_heads",), 12),
    "intermediate_size": (("intermediate_size",), 3072),
    "norm_eps": (("layer_norm_eps",), 1e-12),
    "dropout": (("hidden_dropout_prob",), 0.1),
    "attention_dropout": (("attention_probs_dropout_prob",), 0.1),
    "pad_token_id": (("pad_token_id",), 0),
    "initializer_range": (("initializer_range",), 0.02),
}
_DECODER = "cls.predictions.decoder."  # tied to the word embeddings on both sides


def config_from_hf(hf: dict[str, Any]) -> tuple[Any, str]:
    from qkv.models import BertConfig

    act = hf.get("hidden_act", "gelu")
    if act != "gelu":
        raise unsupported("bert", "hidden_act", act, "'gelu' (exact erf GELU)")
    position = hf.get("position_embedding_type", "absolute")
    if position != "absolute":
        raise unsupported("bert", "position_embedding_type", position, "'absolute'")
    if hf.get("is_decoder") or hf.get("add_cross_attention"):
        raise unsupported("bert", "is_decoder", True, "encoders only (is_decoder=False)")
    architecture = (hf.get("architectures") or ["BertModel"])[0]
    if architecture == "BertForMaskedLM" and hf.get("tie_word_embeddings") is False:
        raise unsupported(
            "bert", "tie_word_embeddings", False, "tied MLM decoder (tie_word_embeddings=True)"
        )
    fields = fields_from_hf(hf, FIELDS)
    for name in ("dropout", "attention_dropout"):
        fields[name] = float(fields[name])
    return BertConfig(**fields), architecture


def canonical_names(state: StateDict, head: str) -> StateDict:
    """``bert.``-prefixed encoder names for BertForMaskedLM, bare names for BertModel (as
    sentence-transformers and BertModel.save_pretrained write them)."""
    bare = strip_prefix(state, "bert.")
    return add_prefix(bare, "bert.", except_=("cls.",)) if head == "BertForMaskedLM" else bare


def ignored(name: str) -> bool:
    return name.endswith("embeddings.position_ids")


def extra(name: str) -> bool:
    return name.removeprefix("bert.").startswith("pooler.")


def optional(name: str, config: Any) -> bool:
    # Older checkpoints store the tied decoder; newer ones omit it. A pooler may be absent.
    return name in (_DECODER + "weight", _DECODER + "bias") or extra(name)


def state_from_hf(state: StateDict, config: Any) -> StateDict:
    kept = {n: t for n, t in state.items() if not (extra(n) or n.startswith(_DECODER))}
    out = names_from_hf(kept, NAMES)
    if _DECODER + "bias" in out:
        out[_DECODER + "weight"] = out["bert.embeddings.word_embeddings.weight"]
    return out


def state_to_hf(state: StateDict, model: nn.Module) -> StateDict:
    width = model.config.n_embd  # type: ignore[union-attr]
    state = {n: t for n, t in state.items() if n != _DECODER + "weight"}
    return names_to_hf(state, NAMES, fused_rows={"attn.c_attn": (width, width, width)})


def mismatch(model: nn.Module) -> str | None:
    from qkv.models import Bert, BertForMaskedLM

    if not isinstance(model, Bert | BertForMaskedLM):
        return f"{type(model).__name__} is not a qkv Bert or BertForMaskedLM"
    return None


def config_to_hf(model: nn.Module) -> dict[str, Any]:
    from qkv.models import BertForMaskedLM

    return {
        "model_type": "bert",
        "architectures": ["BertForMaskedLM" if isinstance(model, BertForMaskedLM) else "BertModel"],
        **fields_to_hf(model.config, FIELDS),  # type: ignore[arg-type]
        "hidden_act": "gelu",
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
    }


ADAPTER = Adapter(
    model_type="bert",
    architectures=ARCHITECTURES,
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    state_from_hf=state_from_hf,
    state_to_hf=state_to_hf,
    canonical_names=canonical_names,
    ignored=ignored,
    optional=optional,
    mismatch=mismatch,
    extra=extra,
)
