"""LoRA adapters on qkv models, through ``peft``, saved in PEFT's own format.

``peft.inject_adapter_in_model`` serves any ``nn.Module`` whose targets are ``nn.Linear``, so
qkv's own modules take LoRA layers directly (no transformers model in between). qkv's
attention has one fused ``c_attn`` projection (rows ``[q | k | v]``, as GPT-2's), so the
targets ``q``, ``k`` and ``v`` all name ``attn.c_attn``; when only some of the three are
asked for, a gradient mask keeps the other rows of ``lora_B`` at their initial zeros, so
the update touches exactly the asked-for projections (what GPT-2 users of peft cannot do).

An adapter checkpoint holds ``adapter_config.json`` + ``adapter_model.safetensors`` (keys
``base_model.model.<module>.lora_A.weight`` as ``PeftModel.save_pretrained`` writes them) and
``base_model.json``: the base model's id or path and the SHA-256 of its config and weights
(:func:`base_sha256`). For GPT-2-family bases the module names are the Hugging Face export's
(``transformer.h.{i}.attn.c_attn``, Conv1D: ``fan_in_fan_out``), so
``peft.PeftModel.from_pretrained(GPT2LMHeadModel.from_pretrained(export), checkpoint)``
loads it; the other families' adapters are written under their export's names too
(:mod:`qkv.io.lora_hf`: Llama's ``q_proj`` / ``v_proj``, ...), unless the export joins modules
adapted separately (said in ``base_model.json``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
BASE_FILE = "base_model.json"
_PEFT_PREFIX = "base_model.model."
# Short target names -> module-name suffixes inside a qkv block (GPT, Llama-style, BERT).
_SHORT = {
    "q": ("attn.c_attn",),
    "k": ("attn.c_attn",),
    "v": ("attn.c_attn",),
    "o": ("attn.c_proj",),
    "mlp": ("mlp.c_fc", "mlp.c_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
}
_HEADS = ("lm_head", "mlm_head", "head", "decoder")


@dataclass(frozen=True, kw_only=True)
class LoraSettings:
    """A LoRA configuration: rank, alpha, dropout and the target list as given."""

    r: int
    alpha: float
    dropout: float = 0.0
    targets: str = "q,v"

    def __post_init__(self) -> None:
        if not isinstance(self.r, int) or self.r < 1:
            raise ValueError(f"LoRA rank must be a positive int, got {self.r!r}")
        if self.alpha <= 0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(
                f"LoRA alpha must be > 0 and dropout in [0, 1), got {self.alpha}, {self.dropout}"
            )


def linear_names(model: nn.Module) -> list[str]:
    """Names of the model's ``nn.Linear`` modules outside the output head."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.split(".")[0] not in _HEADS
    ]


def resolve_targets(model: nn.Module, targets: str) -> tuple[list[str], set[str]]:
    """(full module names to adapt, the parts of the fused q|k|v kept: subset of "qkv").

    ``targets``: comma list of ``q,k,v,o,mlp``, module names or suffixes (``c_fc``), or
    ``all-linear``. Raises ValueError naming a target that matches nothing and the modules
    that exist.
    """
    linears = linear_names(model)
    words = [w.strip() for w in targets.split(",") if w.strip()]
    if not words:
        raise ValueError("--lora-targets is empty; pass e.g. q,v or all-linear")
    if words == ["all-linear"]:
        return linears, {"q", "k", "v"}
    chosen: list[str] = []
    fused: set[str] = set()
    for word in words:
        suffixes = _SHORT.get(word, (word,))
        found = [n for n in linears if any(n == s or n.endswith("." + s) for s in suffixes)]
        if not found:
            kinds = sorted({".".join(n.split(".")[-2:]) for n in linears})
            raise ValueError(
                f"LoRA target {word!r} matches no linear module of this "
                f"{type(model).__name__}; use q,k,v,o,mlp, all-linear or one of: "
                f"{', '.join(kinds)}"
            )
        if word in ("q", "k", "v"):
            fused.add(word)
        elif any(n.endswith("attn.c_attn") for n in found):
            fused.update("qkv")
        chosen += [n for n in found if n not in chosen]
    return chosen, fused


def _fused_row_mask(attention: nn.Module, rows: int, keep: set[str]) -> torch.Tensor | None:
    """(rows, 1) mask of c_attn's output rows to train, None when all three are kept."""
    if keep >= {"q", "k", "v"}:
        return None
    head_dim = getattr(attention, "head_dim", rows // 3)
    n_heads = getattr(attention, "n_heads", None)
    n_q = n_heads * head_dim if n_heads is not None else rows // 3
    n_kv = (rows - n_q) // 2
    sizes = {"q": n_q, "k": n_kv, "v": n_kv}
    parts = [torch.full((sizes[p],), float(p in keep)) for p in ("q", "k", "v")]
    return torch.cat(parts).unsqueeze(1)  # (rows, 1)


def apply_lora(model: nn.Module, settings: LoraSettings) -> nn.Module:
    """Inject LoRA layers (peft) into ``model`` in place and freeze everything else.

    Example::

        >>> model = apply_lora(qkv.load("gpt2-dir"), LoraSettings(r=8, alpha=16))
        >>> [n for n, p in model.named_parameters() if p.requires_grad][:1]
        ['transformer.h.0.attn.c_attn.lora_A.default.weight']
    """
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ModuleNotFoundError:
        raise ValueError(
            "LoRA needs the peft package, which is not installed: pip install 'qkv[finetune]'"
        ) from None

    names, fused = resolve_targets(model, settings.targets)
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=names,
        bias="none",
    )
    model = inject_adapter_in_model(config, model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad = "lora_" in name
    _mask_fused_rows(model, fused)
    model.qkv_lora = settings  # type: ignore[assignment]
    return model


def _mask_fused_rows(model: nn.Module, keep: set[str]) -> None:
    modules = dict(model.named_modules())
    for name, module in modules.items():
        if not name.endswith("attn.c_attn") or not hasattr(module, "lora_B"):
            continue
        attention = modules[name.rsplit(".", 1)[0]]
        weight = module.lora_B["default"].weight  # (rows, r)
        mask = _fused_row_mask(attention, weight.shape[0], keep)
        if mask is not None:
            mask = mask.to(weight.device, weight.dtype)
            weight.register_hook(lambda grad, mask=mask: grad * mask)


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter tensors under PEFT's saved names
    (``base_model.model.<module>.lora_A.weight``)."""
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(model)
    return {_PEFT_PREFIX + k: v.detach().contiguous().cpu() for k, v in state.items()}


def _hf_family(model: nn.Module) -> str | None:
    from qkv.io.hf import adapter_for_model

    try:
        return adapter_for_model(model).model_type
    except ValueError:
        return None


def save_adapter(model: nn.Module, directory: Path, *, base: str, base_hash: str) -> None:
    """Write the LoRA adapter of ``model`` (see :func:`apply_lora`) into ``directory``, under
    the Hugging Face export's module names when the family has an export
    (:mod:`qkv.io.lora_hf`), so ``peft.PeftModel.from_pretrained`` reads it."""
    from qkv.io import lora_hf
    from qkv.io.files import save_safetensors, write_json_atomic

    settings: LoraSettings = model.qkv_lora  # type: ignore[assignment]
    state = adapter_state(model)
    modules = sorted({k[len(_PEFT_PREFIX) :].rsplit(".lora_", 1)[0] for k in state})
    family = _hf_family(model)
    names, why, written = ("hf" if family == "gpt2" else "qkv"), None, modules
    if family not in (None, "gpt2"):
        result = lora_hf.to_hf(model, state, settings.targets)
        if isinstance(result, str):
            why = result
        else:
            state, written = result
            names = "hf"
    save_safetensors(state, directory / ADAPTER_WEIGHTS, metadata={"format": "pt"})
    write_json_atomic(
        directory / ADAPTER_CONFIG,
        {
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM" if family not in (None, "bert") else None,
            "base_model_name_or_path": base,
            "r": settings.r,
            "lora_alpha": settings.alpha,
            "lora_dropout": settings.dropout,
            # block-relative names ("mlp.c_proj"), so attn.c_proj is not caught as well
            "target_modules": sorted({".".join(m.split(".")[-2:]) for m in written}),
            "fan_in_fan_out": family == "gpt2",  # GPT-2's Conv1D stores (in, out)
            "bias": "none",
            "inference_mode": True,
            "modules_to_save": None,
        },
    )
    info = {"base": base, "sha256": base_hash, "lora_targets": settings.targets,
            "module_names": names, "modules": modules}  # fmt: skip
    if family not in (None, "gpt2"):
        info["hf_modules" if why is None else "qkv_names_because"] = written if why is None else why
    write_json_atomic(directory / BASE_FILE, info)


def is_adapter_dir(directory: Path) -> bool:
    return (directory / ADAPTER_CONFIG).is_file() and (directory / BASE_FILE).is_file()


def base_sha256(location: Path, names: list[str]) -> str:
    """One SHA-256 over the files ``names`` of a model folder (its config.json and weights,
    :func:`qkv.io.api.model_file_names`): their names and contents."""
    from qkv.io.integrity import sha256_file

    lines = [f"{n}:{sha256_file(location / n)}" for n in names]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def read_base(directory: Path) -> dict[str, Any]:
    path = directory / BASE_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return {"base": str(info["base"]), "sha256": str(info["sha256"]), **info}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{path} is unreadable ({error}); the adapter checkpoint is damaged"
        ) from None


def check_base(directory: Path, base_location: Path, found: str) -> None:
    """Refuse a base (content hash ``found``) other than the one the adapter in
    ``directory`` was trained on, naming both."""
    expected = read_base(directory)["sha256"]
    if found != expected:
        raise ValueError(
            f"the base model {base_location} changed since the LoRA adapter {directory} was "
            f"trained on it (content hash {found[:12]}..., the adapter was trained on "
            f"{expected[:12]}...); restore that base model or train a new adapter"
        )


def load_adapter_into(model: nn.Module, directory: Path) -> None:
    """Copy the saved adapter tensors of ``directory`` into ``model`` (already adapted)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = load_file(str(directory / ADAPTER_WEIGHTS))
    info = read_base(directory)
    if "hf_modules" in info:  # written under the export's names (qkv.io.lora_hf)
        from qkv.io.lora_hf import from_hf

        state = from_hf(model, state, list(info["modules"]))
    stripped = {k.removeprefix(_PEFT_PREFIX): v for k, v in state.items()}
    result = set_peft_model_state_dict(model, stripped)
    missing = [k for k in result.missing_keys if "lora_" in k]
    if result.unexpected_keys or missing:
        raise ValueError(
            f"{directory / ADAPTER_WEIGHTS} does not match the base model: unexpected "
            f"{list(result.unexpected_keys)[:3]}, missing {missing[:3]}"
        )


def settings_of(directory: Path) -> LoraSettings:
    raw = json.loads((directory / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    targets = read_base(directory).get("lora_targets", ",".join(raw["target_modules"]))
    return LoraSettings(
        r=int(raw["r"]), alpha=float(raw["lora_alpha"]),
        dropout=float(raw.get("lora_dropout", 0.0)), targets=targets,
    )  # fmt: skip


def attach_adapter(model: nn.Module, directory: Path) -> nn.Module:
    """``model`` (the checked base) with the adapter saved in ``directory`` applied, in eval
    mode (:func:`qkv.load` of an adapter checkpoint ends here)."""
    from qkv.io.integrity import verify_files

    verify_files(directory, [ADAPTER_CONFIG, ADAPTER_WEIGHTS, BASE_FILE])
    model = apply_lora(model, settings_of(directory))
    load_adapter_into(model, directory)
    return model.eval()


def merge_lora(model: nn.Module) -> nn.Module:
    """``model`` with every LoRA layer folded into its base weight (W + scale·B·A), as a plain
    qkv model again (the peft layers replaced by their merged ``nn.Linear``)."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge(safe_merge=True)
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())
    if hasattr(model, "qkv_lora"):
        del model.qkv_lora
    for parameter in model.parameters():
        parameter.requires_grad = True
    return model
