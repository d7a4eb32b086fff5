"""The contract every external-format adapter fulfils (torchtitan's "state-dict adapter").

An adapter converts one Hugging Face architecture family to and from qkv: the config
(``config.json`` dict <-> qkv config) and the weights (HF tensor names <-> qkv names). Each
lives in its own module (``hf_gpt2``, ``hf_llama``, ``hf_bert``) and registers an
:class:`Adapter` in :data:`ADAPTERS` under the HF ``model_type``.

Names on the HF side are *canonical*: the full names of the architecture's head model
(``GPT2LMHeadModel``, ``LlamaForCausalLM``, BERT without the ``bert.`` prefix).
``canonical_names`` maps the other spellings found in the wild (``GPT2Model`` without
``transformer.``, sentence-transformers dirs without ``bert.``) onto them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

StateDict = dict[str, Tensor]


@dataclass(frozen=True, kw_only=True)
class Adapter:
    """Conversions between one HF architecture family and qkv.

    ``config_from_hf(hf_config) -> (qkv_config, head)``: ``head`` is the HF architecture
    (``architectures[0]``), which ``build_model`` needs beyond the config (BertForMaskedLM
    versus BertModel).
    ``build_model(config, head) -> nn.Module`` (called under a meta device context).
    ``config_to_hf(model) -> dict`` (config.json content, with model_type and architectures).
    ``state_from_hf(canonical_hf_state, config) -> qkv_state`` and
    ``state_to_hf(qkv_state, model) -> canonical_hf_state``: pure renames/reshapes; they also
    run on meta tensors to derive the expected HF names and shapes of a model.
    ``canonical_names(hf_state, head) -> hf_state`` adds/removes prefixes of other spellings.
    ``ignored(name) -> bool``: HF tensors that carry no weights (buffers such as position_ids).
    ``optional(name, config) -> bool``: HF tensors that may be absent (tied weights).
    ``extra(name) -> bool``: HF tensors qkv has no module for (BERT's pooler): kept verbatim on
    the loaded model (``model.hf_extras``) and written back by ``save(format="hf")``.
    ``mismatch(model) -> str | None``: why a qkv model cannot be written in this format.
    """

    model_type: str
    architectures: tuple[str, ...]
    config_from_hf: Callable[[dict[str, Any]], tuple[Any, str]]
    build_model: Callable[[Any, str], nn.Module]
    config_to_hf: Callable[[nn.Module], dict[str, Any]]
    state_from_hf: Callable[[StateDict, Any], StateDict]
    state_to_hf: Callable[[StateDict, nn.Module], StateDict]
    canonical_names: Callable[[StateDict, str], StateDict]
    ignored: Callable[[str], bool]
    optional: Callable[[str, Any], bool]
    mismatch: Callable[[nn.Module], str | None]
    extra: Callable[[str], bool] = lambda name: False


def hf_value(hf: dict[str, Any], *names: str, default: Any = None) -> Any:
    """The first of ``names`` present in an HF config dict (configs renamed fields over time)."""
    for name in names:
        if name in hf and hf[name] is not None:
            return hf[name]
    return default


def unsupported(model_type: str, field: str, value: Any, supported: str) -> ValueError:
    """The error for an HF config option qkv cannot reproduce exactly."""
    return ValueError(
        f"{field}={value!r} is not supported for {model_type} by qkv (supported: {supported}); "
        "the converted model would not match the original"
    )
