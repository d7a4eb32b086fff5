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

import re
from typing import Any

import torch
from torch import nn

from qkv.io.adapter import Adapter, StateDict, hf_value, unsupported

ARCHITECTURES = ("BertModel", "BertForMaskedLM")
_LAYER = re.compile(r"^(bert\.)?encoder\.layer\.(\d+)\.(.+)$")
_RENAMES = {
    "attention.output.dense": "attn.c_proj",
    "attention.output.LayerNorm": "ln_1",
    "intermediate.dense": "mlp.c_fc",
    "output.dense": "mlp.c_proj",
    "output.LayerNorm": "ln_2",
}


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
    config = BertConfig(
        vocab_size=hf_value(hf, "vocab_size", default=30522),
        n_positions=hf_value(hf, "max_position_embeddings", default=512),
        type_vocab_size=hf_value(hf, "type_vocab_size", default=2),
        n_layer=hf_value(hf, "num_hidden_layers", default=12),
        n_head=hf_value(hf, "num_attention_heads", default=12),
        n_embd=hf_value(hf, "hidden_size", default=768),
        intermediate_size=hf_value(hf, "intermediate_size", default=3072),
        norm_eps=hf_value(hf, "layer_norm_eps", default=1e-12),
        dropout=float(hf_value(hf, "hidden_dropout_prob", default=0.1)),
        attention_dropout=float(hf_value(hf, "attention_probs_dropout_prob", default=0.1)),
        pad_token_id=hf_value(hf, "pad_token_id", default=0),
        initializer_range=hf_value(hf, "initializer_range", default=0.02),
    )
    return config, architecture


def build_model(config: Any, head: str) -> nn.Module:
    from qkv.models import build

    return build(config, masked_lm=head == "BertForMaskedLM")


def canonical_names(state: StateDict, head: str) -> StateDict:
    """``bert.``-prefixed encoder names for BertForMaskedLM, bare names for BertModel (as
    sentence-transformers and BertModel.save_pretrained write them)."""
    masked_lm = head == "BertForMaskedLM"
    out = {}
    for name, tensor in state.items():
        bare = name.removeprefix("bert.")
        if masked_lm and not name.startswith("cls."):
            name = f"bert.{bare}"
        elif not masked_lm:
            name = bare
        out[name] = tensor
    return out


def ignored(name: str) -> bool:
    return name.endswith("embeddings.position_ids")


def extra(name: str) -> bool:
    return name.removeprefix("bert.").startswith("pooler.")


def optional(name: str, config: Any) -> bool:
    # Older checkpoints store the tied decoder; newer ones omit it. A pooler may be absent.
    return name in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias") or extra(name)


def state_from_hf(state: StateDict, config: Any) -> StateDict:
    out: StateDict = {}
    prefix = ""
    for name, tensor in state.items():
        if extra(name) or name.startswith("cls.predictions.decoder."):
            continue
        if name == "cls.predictions.bias":
            out["cls.predictions.decoder.bias"] = tensor
        elif match := _LAYER.match(name):
            prefix, index, rest = match.group(1) or "", match.group(2), match.group(3)
            base = f"{prefix}layers.{index}."
            if rest.startswith("attention.self.query."):
                kind = rest.rsplit(".", 1)[1]
                parts = [
                    state[f"{prefix}encoder.layer.{index}.attention.self.{p}.{kind}"]
                    for p in ("query", "key", "value")
                ]
                out[f"{base}attn.c_attn.{kind}"] = torch.cat(parts, dim=0)  # rows q | k | v
            elif rest.startswith(("attention.self.key.", "attention.self.value.")):
                continue  # fused with the query above
            else:
                module, kind = rest.rsplit(".", 1)
                out[f"{base}{_RENAMES.get(module, module)}.{kind}"] = tensor
        else:
            out[name] = tensor
    if "cls.predictions.decoder.bias" in out:
        out["cls.predictions.decoder.weight"] = out["bert.embeddings.word_embeddings.weight"]
    return out


def state_to_hf(state: StateDict, model: nn.Module) -> StateDict:
    back = {v: k for k, v in _RENAMES.items()}
    width = model.config.n_embd  # type: ignore[union-attr]
    out: StateDict = {}
    for name, tensor in state.items():
        if name == "cls.predictions.decoder.weight":
            continue  # tied to the word embeddings
        if name == "cls.predictions.decoder.bias":
            out["cls.predictions.bias"] = tensor
        elif match := re.match(r"^(bert\.)?layers\.(\d+)\.(.+)$", name):
            prefix, index, rest = match.group(1) or "", match.group(2), match.group(3)
            base = f"{prefix}encoder.layer.{index}."
            module, kind = rest.rsplit(".", 1)
            if module == "attn.c_attn":
                for part, piece in zip(("query", "key", "value"), tensor.split(width, dim=0)):
                    out[f"{base}attention.self.{part}.{kind}"] = piece.contiguous()
            else:
                out[f"{base}{back.get(module, module)}.{kind}"] = tensor
        else:
            out[name] = tensor
    return out


def mismatch(model: nn.Module) -> str | None:
    from qkv.models import Bert, BertForMaskedLM

    if not isinstance(model, Bert | BertForMaskedLM):
        return f"{type(model).__name__} is not a qkv Bert or BertForMaskedLM"
    return None


def config_to_hf(model: nn.Module) -> dict[str, Any]:
    from qkv.models import BertForMaskedLM

    c = model.config  # type: ignore[union-attr]
    return {
        "model_type": "bert",
        "architectures": ["BertForMaskedLM" if isinstance(model, BertForMaskedLM) else "BertModel"],
        "vocab_size": c.vocab_size,
        "max_position_embeddings": c.n_positions,
        "type_vocab_size": c.type_vocab_size,
        "hidden_size": c.n_embd,
        "num_hidden_layers": c.n_layer,
        "num_attention_heads": c.n_head,
        "intermediate_size": c.intermediate_size,
        "hidden_act": "gelu",
        "layer_norm_eps": c.norm_eps,
        "hidden_dropout_prob": c.dropout,
        "attention_probs_dropout_prob": c.attention_dropout,
        "pad_token_id": c.pad_token_id,
        "initializer_range": c.initializer_range,
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
    }


ADAPTER = Adapter(
    model_type="bert",
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
    extra=extra,
)
