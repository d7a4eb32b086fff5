"""The contract every external-format adapter fulfils (torchtitan's "state-dict adapter"),
and the parts families share, so that a new family is mostly data.

An adapter converts one Hugging Face architecture family to and from qkv: the config
(``config.json`` dict <-> qkv config) and the weights (HF tensor names <-> qkv names). Each
lives in its own module (``hf_gpt2``, ``hf_llama``, ``hf_bert``) and registers an
:class:`Adapter` in :data:`ADAPTERS` under the HF ``model_type``.

Names on the HF side are *canonical*: the full names of the architecture's head model
(``GPT2LMHeadModel``, ``LlamaForCausalLM``, BERT without the ``bert.`` prefix).
``canonical_names`` maps the other spellings found in the wild (``GPT2Model`` without
``transformer.``, sentence-transformers dirs without ``bert.``) onto them.

Shared parts: :class:`NameMap` (a family's tensor names as data, converted both ways by
:func:`names_from_hf` / :func:`names_to_hf`: renames, fused q|k|v rows, Conv1D transposes),
:data:`ConfigFields` tables (config fields both ways), :func:`add_prefix` /
:func:`strip_prefix`, :func:`tie_head`, :func:`config_mismatch` and :func:`build_default`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

StateDict = dict[str, Tensor]
# qkv config field -> (HF config names, newest first, read in order; the first is written,
# and the default when none is present).
ConfigFields = Mapping[str, tuple[tuple[str, ...], Any]]


def build_default(config: Any, head: str) -> nn.Module:
    """The qkv model of ``config`` (a masked-LM head for ``*ForMaskedLM`` architectures)."""
    from qkv.models import build

    return build(config, masked_lm=head.endswith("ForMaskedLM"))


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
    config_to_hf: Callable[[nn.Module], dict[str, Any]]
    state_from_hf: Callable[[StateDict, Any], StateDict]
    state_to_hf: Callable[[StateDict, nn.Module], StateDict]
    canonical_names: Callable[[StateDict, str], StateDict]
    ignored: Callable[[str], bool]
    optional: Callable[[str, Any], bool]
    mismatch: Callable[[nn.Module], str | None]
    build_model: Callable[[Any, str], nn.Module] = build_default
    extra: Callable[[str], bool] = lambda name: False


# --- config.json -------------------------------------------------------------------------


def hf_value(hf: dict[str, Any], *names: str, default: Any = None) -> Any:
    """The first of ``names`` present in an HF config dict (configs renamed fields over time)."""
    for name in names:
        if name in hf and hf[name] is not None:
            return hf[name]
    return default


def fields_from_hf(hf: dict[str, Any], table: ConfigFields) -> dict[str, Any]:
    """qkv config keyword arguments read from an HF config dict by ``table``."""
    return {qkv: hf_value(hf, *names, default=default) for qkv, (names, default) in table.items()}


def fields_to_hf(config: Any, table: ConfigFields) -> dict[str, Any]:
    """The HF config entries of ``table``'s fields of a qkv config (first HF name of each)."""
    return {names[0]: getattr(config, qkv) for qkv, (names, _) in table.items()}


def unsupported(model_type: str, field: str, value: Any, supported: str) -> ValueError:
    """The error for an HF config option qkv cannot reproduce exactly."""
    return ValueError(
        f"{field}={value!r} is not supported for {model_type} by qkv (supported: {supported}); "
        "the converted model would not match the original"
    )


def config_mismatch(
    model: nn.Module, family: str, wanted: Callable[[Any], Mapping[str, Any]]
) -> str | None:
    """Why a qkv GPT cannot be written as ``family``: the config fields that differ from
    ``wanted(config)`` ({field: value the family has}), or None when it can."""
    from qkv.models import GPT

    if not isinstance(model, GPT):
        return f"{type(model).__name__} is not a qkv GPT"
    c = model.config
    wrong = [
        f"{name}={getattr(c, name)!r} ({family} has {value!r})"
        for name, value in wanted(c).items()
        if getattr(c, name) != value
    ]
    return "; ".join(wrong) or None


# --- tensor names ------------------------------------------------------------------------


def add_prefix(state: StateDict, prefix: str, *, except_: tuple[str, ...] = ()) -> StateDict:
    """``prefix`` before every name that lacks it, except names starting with ``except_``.

    Example::

        >>> add_prefix({"h.0.w": t, "lm_head.weight": u}, "transformer.", except_=("lm_head.",))
        {'transformer.h.0.w': t, 'lm_head.weight': u}
    """
    return {
        name if name.startswith((prefix, *except_)) else prefix + name: tensor
        for name, tensor in state.items()
    }


def strip_prefix(state: StateDict, prefix: str) -> StateDict:
    """Every name without a leading ``prefix``."""
    return {name.removeprefix(prefix): tensor for name, tensor in state.items()}


def tie_head(state: StateDict, *, head: str, embeddings: str, tied: bool) -> StateDict:
    """``state`` with ``head`` set to the ``embeddings`` tensor when tied (or absent)."""
    if tied or head not in state:
        state[head] = state[embeddings]
    return state


def _one_to_one(mapping: Mapping[str, str], what: str) -> dict[str, str]:
    inverse = {qkv: hf for hf, qkv in mapping.items()}
    if len(inverse) != len(mapping):
        raise ValueError(f"NameMap.{what} maps two HF names to one qkv name; it must invert")
    return inverse


@dataclass(frozen=True, kw_only=True)
class NameMap:
    """One family's tensor names, HF -> qkv, as data (inverted for saving).

    ``names``: whole tensor names (embeddings, final norm, head). Per-layer tensors are
    ``{head}{hf_layer}{rest}`` <-> ``{head}{qkv_layer}{rest'}`` where ``hf_layer`` /
    ``qkv_layer`` hold ``{}`` for the layer index, ``head`` is one of ``heads`` (a model
    prefix both sides share, e.g. BERT's ``bert.``) and ``rest`` is ``module.weight`` or
    ``module.bias`` with ``module`` renamed by ``modules`` (unlisted modules keep their
    name). ``fused``: qkv module -> the HF modules whose rows it concatenates, in order
    (``{"attn.c_attn": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")}``).
    ``transposed``: qkv modules whose weight HF stores as (in, out) (GPT-2's Conv1D).
    Names matching nothing pass through unchanged.

    Example::

        >>> LLAMA = NameMap(names={"model.norm.weight": "transformer.ln_f.weight"},
        ...                 hf_layer="model.layers.{}.", qkv_layer="transformer.h.{}.",
        ...                 modules={"input_layernorm": "ln_1"})
        >>> names_from_hf({"model.layers.3.input_layernorm.weight": w}, LLAMA)
        {'transformer.h.3.ln_1.weight': w}
    """

    hf_layer: str
    qkv_layer: str
    names: Mapping[str, str] = field(default_factory=dict)
    modules: Mapping[str, str] = field(default_factory=dict)
    fused: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    transposed: tuple[str, ...] = ()
    heads: tuple[str, ...] = ("",)

    def __post_init__(self) -> None:
        for template in (self.hf_layer, self.qkv_layer):
            if template.count("{}") != 1 or not template.endswith("."):
                raise ValueError(
                    f"NameMap layer template {template!r} needs one '{{}}' for the layer index "
                    "and a trailing '.', e.g. 'model.layers.{}.'"
                )
        _one_to_one(self.names, "names")
        _one_to_one(self.modules, "modules")

    def _pattern(self, template: str) -> re.Pattern[str]:
        heads = "|".join(re.escape(head) for head in self.heads)
        before, after = (re.escape(part) for part in template.split("{}"))
        return re.compile(rf"^({heads}){before}(\d+){after}(.+)\.(\w+)$")


def names_from_hf(state: StateDict, names: NameMap) -> StateDict:
    """HF-named tensors -> qkv names (fusing and transposing as ``names`` says)."""
    pattern = names._pattern(names.hf_layer)
    parts_of = {hf: (qkv, i) for qkv, parts in names.fused.items() for i, hf in enumerate(parts)}
    out: StateDict = {}
    pending: dict[str, dict[int, Tensor]] = {}
    for name, tensor in state.items():
        match = pattern.match(name)
        if name in names.names or match is None:
            out[names.names.get(name, name)] = tensor
            continue
        head, index, module, kind = match.groups()
        base = head + names.qkv_layer.format(index)
        qkv_module, part = parts_of.get(module, (names.modules.get(module, module), None))
        if qkv_module in names.transposed and kind == "weight":
            tensor = tensor.t().contiguous()  # Conv1D (in, out) -> Linear (out, in)
        if part is None:
            out[f"{base}{qkv_module}.{kind}"] = tensor
        else:
            pending.setdefault(f"{base}{qkv_module}.{kind}", {})[part] = tensor
    out.update(_fused(pending))
    return out


def _fused(pending: dict[str, dict[int, Tensor]]) -> StateDict:
    """Each name's parts concatenated by rows (q | k | v), on one thread.

    One thread because on the 2-core VM of 2026-12-02 a 2 MiB bf16 ``torch.cat`` took 24 ms
    with 2 threads and 0.4-3 ms with one (waking the second thread costs more than the copy):
    Qwen2.5-0.5B's 48 fused tensors took 0.55 s of a 0.6 s ``qkv.load``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {
            name: torch.cat([parts[i] for i in range(len(parts))], dim=0)  # rows q | k | v
            for name, parts in pending.items()
        }
    finally:
        torch.set_num_threads(threads)


def names_to_hf(
    state: StateDict, names: NameMap, *, fused_rows: Mapping[str, Sequence[int]] | None = None
) -> StateDict:
    """qkv-named tensors -> HF names: the inverse of :func:`names_from_hf`. ``fused_rows``
    gives each fused module's row counts per HF part (q, k, v sizes)."""
    pattern = names._pattern(names.qkv_layer)
    whole = _one_to_one(names.names, "names")
    modules = _one_to_one(names.modules, "modules")
    out: StateDict = {}
    for name, tensor in state.items():
        match = pattern.match(name)
        if name in whole or match is None:
            out[whole.get(name, name)] = tensor
            continue
        head, index, module, kind = match.groups()
        base = head + names.hf_layer.format(index)
        if module in names.fused:
            if fused_rows is None or module not in fused_rows:
                raise ValueError(f"names_to_hf needs fused_rows[{module!r}] to split {name}")
            pieces = tensor.split(list(fused_rows[module]), dim=0)
            targets = [f"{base}{part}.{kind}" for part in names.fused[module]]
        else:
            pieces, targets = (tensor,), [f"{base}{modules.get(module, module)}.{kind}"]
        for target, piece in zip(targets, pieces):
            if module in names.transposed and kind == "weight":
                piece = piece.t()  # Linear (out, in) -> Conv1D (in, out)
            out[target] = piece.contiguous()
    return out
