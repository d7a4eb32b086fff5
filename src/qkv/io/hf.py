"""Hugging Face model directories: read one into a qkv model, write a qkv model as one.

The per-architecture knowledge lives in the adapters (``hf_gpt2``, ``hf_llama``, ``hf_bert``,
``hf_neox``, ``hf_mistral``, ``hf_qwen``, ``hf_gemma``, ``hf_phi3``);
this module finds the weights file(s), checks every tensor against what the converted model
expects (names and shapes derived by running the adapter on the meta-built model), converts
and assigns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from qkv.io.adapter import Adapter, StateDict
from qkv.io.files import read_json, read_weights, save_safetensors, write_json_atomic
from qkv.io.hf_bert import ADAPTER as BERT
from qkv.io.hf_gemma import GEMMA2, GEMMA3
from qkv.io.hf_gpt2 import ADAPTER as GPT2
from qkv.io.hf_llama import ADAPTER as LLAMA
from qkv.io.hf_mistral import ADAPTER as MISTRAL
from qkv.io.hf_neox import ADAPTER as NEOX
from qkv.io.hf_phi3 import ADAPTER as PHI3
from qkv.io.hf_qwen import QWEN2, QWEN3
from qkv.io.state import assign, build_empty, check_state, shapes

# Saving picks the first adapter whose family reproduces the model exactly (Llama before
# Mistral/Phi-3, which equal it when no layer slides).
ADAPTERS: dict[str, Adapter] = {
    a.model_type: a for a in (GPT2, LLAMA, BERT, NEOX, MISTRAL, QWEN2, QWEN3, GEMMA2, GEMMA3, PHI3)
}
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def supported() -> str:
    """Human list of the architectures qkv reads and writes."""
    return ", ".join(f"{a.model_type} ({' / '.join(a.architectures)})" for a in ADAPTERS.values())


def adapter_for_config(raw: dict[str, Any], config_file: Path) -> Adapter:
    model_type = raw.get("model_type")
    adapter = ADAPTERS.get(str(model_type))
    if adapter is None:
        raise ValueError(
            f"{config_file}: unsupported architecture model_type={model_type!r} "
            f"(architectures={raw.get('architectures')}); qkv.load supports {supported()} "
            "and qkv checkpoints"
        )
    architectures = raw.get("architectures") or [adapter.architectures[0]]
    if architectures[0] not in adapter.architectures:
        raise ValueError(
            f"{config_file}: unsupported architecture {architectures[0]!r}; for model_type "
            f"{model_type!r} qkv.load supports {', '.join(adapter.architectures)} "
            f"(all supported: {supported()})"
        )
    return adapter


def weight_files(directory: Path) -> list[Path]:
    """The weights of an HF directory: one file, or the shards an index.json lists."""
    for name in _WEIGHT_FILES:
        index = directory / f"{name}.index.json"
        if index.is_file():
            weight_map = read_json(index).get("weight_map")
            if not isinstance(weight_map, dict):
                raise ValueError(f"{index} has no weight_map; the index is corrupt")
            return [directory / shard for shard in sorted(set(weight_map.values()))]
        if (directory / name).is_file():
            return [directory / name]
    raise FileNotFoundError(
        f"no weights in {directory}: expected model.safetensors or pytorch_model.bin "
        "(or a sharded *.index.json) beside config.json"
    )


def load_hf(directory: Path, raw: dict[str, Any]) -> nn.Module:
    """Convert the HF model in ``directory`` (config.json already read as ``raw``)."""
    config_file = directory / "config.json"
    adapter = adapter_for_config(raw, config_file)
    try:
        config, head = adapter.config_from_hf(raw)
    except ValueError as error:
        raise ValueError(f"{config_file}: {error}") from None
    files = weight_files(directory)
    found: StateDict = {}
    for file in files:
        found.update(read_weights(file))
    source = files[0] if len(files) == 1 else directory
    found = adapter.canonical_names(found, head)

    def factory() -> nn.Module:
        return adapter.build_model(config, head)

    model = build_empty(factory)
    expected = shapes(adapter.state_to_hf(model.state_dict(), model))
    extras = {name: t for name, t in found.items() if adapter.extra(name)}
    check_state(
        found,
        expected,
        source=source,
        what=f"{head} with this config.json",
        ignored=lambda name: adapter.ignored(name) or adapter.extra(name),
        optional=lambda name: adapter.optional(name, config),
    )
    kept = {n: t for n, t in found.items() if not adapter.ignored(n) and n not in extras}
    model = assign(model, adapter.state_from_hf(kept, config), factory)
    if extras:
        model.hf_extras = extras  # type: ignore[assignment]
    # Saved back as the family it came from (Phi-3 without biases also fits Mistral).
    model.hf_model_type = adapter.model_type  # type: ignore[assignment]
    return model


def adapter_for_model(model: nn.Module) -> Adapter:
    reasons = []
    source = ADAPTERS.get(str(getattr(model, "hf_model_type", None)))
    if source is not None and source.mismatch(model) is None:
        return source
    for adapter in ADAPTERS.values():
        why = adapter.mismatch(model)
        if why is None:
            return adapter
        reasons.append(f"{adapter.model_type}: {why}")
    raise ValueError(
        "no Hugging Face architecture matches this model exactly ("
        + "; ".join(reasons)
        + "); save it with format='qkv'"
    )


def save_hf(model: nn.Module, directory: Path) -> None:
    """Write ``model`` as an HF directory that transformers' ``from_pretrained`` opens as the
    matching architecture (weights first, then config.json, each atomically)."""
    adapter = adapter_for_model(model)
    hf_config = adapter.config_to_hf(model)
    state = adapter.state_to_hf(model.state_dict(), model)
    architecture = hf_config["architectures"][0]
    for name, tensor in (getattr(model, "hf_extras", None) or {}).items():
        canonical = adapter.canonical_names({name: tensor}, architecture)
        state.update(canonical)
    dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
    hf_config["dtype"] = str(dtypes.pop() if len(dtypes) == 1 else "float32").removeprefix("torch.")
    save_safetensors(state, directory / "model.safetensors", metadata={"format": "pt"})
    write_json_atomic(directory / "config.json", hf_config)
