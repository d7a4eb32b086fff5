"""The qkv checkpoint format: a directory with ``config.json`` and ``model.safetensors``.

``config.json``::

    {
      "format": "qkv",
      "format_version": 1,
      "qkv_version": "0.1.0",
      "model": "GPT" | "Bert" | "BertForMaskedLM",   # the class to build
      "config": {...},                                # config.to_dict(), with "architecture"
      "dtype": "float32",                             # dtype of the saved weights
      "tied": {"lm_head.weight": "transformer.wte.weight"}  # aliases stored once
    }

``model.safetensors`` holds the model's ``state_dict()`` under qkv's parameter names, each tied
tensor once (its aliases are listed in ``tied``), plus ``hf_extras.<name>`` for tensors kept from
a Hugging Face checkpoint that qkv has no module for (BERT's pooler). A bare
``config.to_dict()`` as ``config.json`` (no wrapper) is read too, as a ``GPT`` / ``Bert``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from qkv.io.files import read_weights, save_safetensors, write_json_atomic
from qkv.io.state import assign, build_empty, check_state, shapes, unique_state

FORMAT_VERSION = 1
EXTRAS_PREFIX = "hf_extras."
WEIGHTS = "model.safetensors"
_MODELS = ("GPT", "Bert", "BertForMaskedLM")


def is_qkv_config(raw: dict[str, Any]) -> bool:
    """True for a qkv config.json (wrapped, or a bare ``config.to_dict()``)."""
    if raw.get("format") == "qkv":
        return True
    return "model_type" not in raw and raw.get("architecture") in ("gpt", "bert")


def model_kind(model: nn.Module) -> str:
    from qkv.models import GPT, Bert, BertForMaskedLM

    for cls in (GPT, BertForMaskedLM, Bert):
        if isinstance(model, cls):
            return cls.__name__
    raise ValueError(
        f"qkv.save needs a qkv model (GPT, Bert, BertForMaskedLM) with a .config, got "
        f"{type(model).__name__}; save other modules with torch.save(module.state_dict())"
    )


def save_qkv(model: nn.Module, directory: Path) -> None:
    """Write ``model`` as a qkv checkpoint into ``directory`` (weights first, then config, each
    atomically: a reader never sees a config.json without its weights)."""
    from qkv import __version__

    kind = model_kind(model)
    state, aliases = unique_state(model)
    extras = getattr(model, "hf_extras", None) or {}
    state.update({EXTRAS_PREFIX + name: tensor for name, tensor in extras.items()})
    dtypes = {str(t.dtype).removeprefix("torch.") for t in state.values() if t.is_floating_point()}
    save_safetensors(state, directory / WEIGHTS, metadata={"format": "pt", "qkv_format": "1"})
    write_json_atomic(
        directory / "config.json",
        {
            "format": "qkv",
            "format_version": FORMAT_VERSION,
            "qkv_version": __version__,
            "model": kind,
            "config": model.config.to_dict(),  # type: ignore[union-attr, operator]
            "dtype": dtypes.pop() if len(dtypes) == 1 else sorted(dtypes),
            "tied": aliases,
        },
    )


def load_qkv(directory: Path, raw: dict[str, Any]) -> nn.Module:
    """Build the model a qkv ``config.json`` describes and load its checked weights."""
    from qkv.models import build, config_from_dict

    config_file = directory / "config.json"
    wrapped = raw.get("format") == "qkv"
    if wrapped and raw.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise ValueError(
            f"{config_file} has format_version {raw['format_version']}, newer than this qkv "
            f"reads ({FORMAT_VERSION}); upgrade qkv"
        )
    kind = raw.get("model", "") if wrapped else ""
    if wrapped and kind not in _MODELS:
        raise ValueError(
            f"{config_file}: unknown model {kind!r}; expected one of {', '.join(_MODELS)}"
        )
    try:
        config = config_from_dict(raw["config"] if wrapped else raw)
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"{config_file}: invalid qkv config: {error}") from None

    def factory() -> nn.Module:
        return build(config, masked_lm=kind == "BertForMaskedLM")

    model = build_empty(factory)
    weights_file = directory / WEIGHTS
    if not weights_file.is_file():
        raise FileNotFoundError(
            f"{weights_file} not found: a qkv checkpoint needs {WEIGHTS} beside config.json"
        )
    state = read_weights(weights_file)
    extras = {
        name.removeprefix(EXTRAS_PREFIX): state.pop(name)
        for name in list(state)
        if name.startswith(EXTRAS_PREFIX)
    }
    expected, aliases = unique_state(model)
    check_state(
        state,
        shapes(expected),
        source=weights_file,
        what=f"a {kind or type(model).__name__} with this config.json",
        ignored=lambda name: name in aliases,  # a tied copy stored anyway is harmless
    )
    full = dict(state)
    for alias, kept in aliases.items():
        full[alias] = full[kept]
    model = assign(model, full, factory)
    if extras:
        model.hf_extras = extras  # type: ignore[assignment]
    return model
