"""LoRA adapters under the Hugging Face export's module names, so ``peft`` reads them.

qkv adapts its own modules (one fused ``attn.c_attn`` with rows ``[q | k | v]``, qkv's layer
names). The export of a base (``qkv.save(..., format="hf")``) renames, splits, joins or
regroups those weights per family (Llama's ``self_attn.{q,k,v}_proj``, GPT-NeoX's per-head
``query_key_value``, Phi-3's fused ``qkv_proj``, BERT's ``attention.self.{query,key,value}``).
An adapter follows the same map: ``ΔW = B·A`` with ``A`` (r, in) shared by every row, so a
row operation on W (split, join, permutation) is the same row operation on ``B``, and ``A``
goes unchanged to every piece.

The map of rows is found by running the family's own ``state_to_hf`` on index tensors (row
``i`` of module ``k`` holds ``k·2^20 + i``), so it is exactly the export's, whatever the
family does. A Hugging Face module fed by two qkv modules with different ``A`` (Phi-3's
``gate_up_proj`` from separately adapted ``gate_proj`` and ``up_proj``) cannot hold one LoRA
pair: :func:`to_hf` then says why and the adapter keeps qkv's names.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

PREFIX = "base_model.model."
_ROWS = 1 << 20  # row-index stride per module (exact in float64)
_PARTS = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "query": "q", "key": "k", "value": "v"}


def _family(model: nn.Module) -> Any:
    from qkv.io.hf import adapter_for_model

    return adapter_for_model(model)


def _row_map(model: nn.Module, modules: list[str]) -> dict[str, tuple[list[int], torch.Tensor]]:
    """HF module name -> (the qkv modules feeding it by index into ``modules``, (rows, 2)
    long tensor of (module index, row) per HF row), from the family's own ``state_to_hf``."""
    fake = {}
    for k, name in enumerate(modules):
        rows = model.get_submodule(name).get_base_layer().weight.shape[0]
        fake[name + ".weight"] = (torch.arange(rows, dtype=torch.float64) + k * _ROWS)[:, None]
    out: dict[str, tuple[list[int], torch.Tensor]] = {}
    for hf_name, tensor in _family(model).state_to_hf(fake, model).items():
        if not hf_name.endswith(".weight"):
            continue
        index = tensor.reshape(-1).long()  # (rows,)
        pairs = torch.stack([index // _ROWS, index % _ROWS], dim=1)  # (rows, 2)
        out[hf_name.removesuffix(".weight")] = (sorted(set(pairs[:, 0].tolist())), pairs)
    return out


def _kept_parts(targets: str) -> set[str]:
    words = {w.strip() for w in targets.split(",")}
    if words & {"all-linear", "c_attn", "attn.c_attn"}:
        return {"q", "k", "v"}
    return words & {"q", "k", "v"}


def to_hf(
    model: nn.Module, state: dict[str, torch.Tensor], targets: str
) -> tuple[dict[str, torch.Tensor], list[str]] | str:
    """The adapter ``state`` (PEFT names over qkv modules) under the HF export's module names,
    with the HF modules it adapts, or the reason it cannot be written that way. A q/k/v piece
    that was not a target (its rows kept at zero) is left out."""
    modules = sorted({k[len(PREFIX) :].rsplit(".lora_", 1)[0] for k in state})
    try:
        rows = _row_map(model, modules)
    except (ValueError, KeyError) as error:
        return f"the family's export cannot map the adapted modules ({error})"
    kept = _kept_parts(targets)
    out: dict[str, torch.Tensor] = {}
    adapted: list[str] = []
    for hf_module, (sources, pairs) in rows.items():
        a_list = [state[f"{PREFIX}{modules[k]}.lora_A.weight"] for k in sources]
        if any(not torch.equal(a_list[0], a) for a in a_list[1:]):
            names = ", ".join(modules[k] for k in sources)
            return (
                f"{hf_module} joins {names}, which were adapted separately (a LoRA pair per "
                "module), and one Hugging Face module holds one pair"
            )
        b = torch.cat(
            [
                state[f"{PREFIX}{modules[int(k)]}.lora_B.weight"][int(i)][None]
                for k, i in pairs.tolist()
            ]
        )  # (rows, r)
        part = _PARTS.get(hf_module.rsplit(".", 1)[-1])
        if part is not None and part not in kept and not b.any():
            continue  # a q/k/v slice that was not trained
        out[f"{PREFIX}{hf_module}.lora_A.weight"] = a_list[0].clone()  # one file tensor each
        out[f"{PREFIX}{hf_module}.lora_B.weight"] = b.contiguous()
        adapted.append(hf_module)
    return out, sorted(adapted)


def from_hf(
    model: nn.Module, state: dict[str, torch.Tensor], modules: list[str]
) -> dict[str, torch.Tensor]:
    """The inverse of :func:`to_hf`: HF-named adapter tensors back onto the qkv ``modules``
    (rows of a left-out q/k/v piece stay zero)."""
    rows = _row_map(model, modules)
    out: dict[str, torch.Tensor] = {}
    for name in modules:
        base = model.get_submodule(name).get_base_layer().weight
        r = next(t.shape[0] for k, t in state.items() if k.endswith(".lora_A.weight"))  # the rank
        out[f"{PREFIX}{name}.lora_B.weight"] = torch.zeros(base.shape[0], r, dtype=base.dtype)
    for hf_module, (sources, pairs) in rows.items():
        a = state.get(f"{PREFIX}{hf_module}.lora_A.weight")
        if a is None:
            continue
        b = state[f"{PREFIX}{hf_module}.lora_B.weight"]
        for k in sources:
            key = f"{PREFIX}{modules[k]}.lora_A.weight"
            if key in out and not torch.equal(out[key], a):
                raise ValueError(
                    f"the adapter's pieces of {modules[k]} carry different lora_A tensors; "
                    "it was not written by qkv: load it with peft onto the transformers model"
                )
            out[key] = a
        for j, (k, i) in enumerate(pairs.tolist()):
            out[f"{PREFIX}{modules[int(k)]}.lora_B.weight"][int(i)] = b[j]
    missing = [m for m in modules if f"{PREFIX}{m}.lora_A.weight" not in out]
    if missing:
        raise ValueError(f"the adapter holds no tensors for {missing[:3]}; it is incomplete")
    return out
