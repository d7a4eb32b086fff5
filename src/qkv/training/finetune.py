"""Fine-tuning: ``qkv train --init-from MODEL`` (full, or LoRA with ``--lora-r``).

The base is anything :func:`qkv.load` opens (a qkv run or checkpoint, a Hugging Face folder
of GPT-2 / Llama / BERT, a hub id); its own tokenizer is used, its shape is kept (flags that
would change either are refused), and a BERT with a masked-LM head trains on masked-LM
batches. The rest of the run is ``qkv train``'s: progress, metrics, atomic checkpoints,
bit-identical resume. A full fine-tune's checkpoints are whole qkv models; a LoRA run's hold
only the adapter in PEFT's format plus the base's id or path and content hash
(:mod:`qkv.io.lora`), which resuming and loading check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from qkv.training.config import TrainConfig

if TYPE_CHECKING:
    from qkv.data.tokenizer import Tokenizer

# Defaults of a fine-tune where the flag was not given: a tenth of the from-scratch rate
# for full fine-tuning (LoRA's few new weights take a larger one) and a short warmup.
FULL_DEFAULTS: dict[str, Any] = {"lr": 1e-4, "min_lr": 1e-5, "warmup_iters": 10}
LORA_DEFAULTS: dict[str, Any] = {"lr": 1e-3, "min_lr": 1e-4, "warmup_iters": 10}
# Flags that would change the base's tokenizer or shape.
_REFUSED = ("model", "tokenizer", "vocab_size", "n_layer", "n_head", "n_embd")


def finetune_defaults(lora: bool) -> dict[str, Any]:
    """The TrainConfig values a fine-tune uses unless a flag overrides them."""
    return dict(LORA_DEFAULTS if lora else FULL_DEFAULTS)


def finetune_config(init_from: str, **fields: Any) -> TrainConfig:
    """A TrainConfig fine-tuning ``init_from`` with the fine-tune defaults under ``fields``.

    Example::

        >>> config = finetune_config("runs/shakespeare", data="new.txt", lora_r=8)
    """
    lora = int(fields.get("lora_r", 0)) > 0
    return TrainConfig(**{**finetune_defaults(lora), **fields, "init_from": init_from})


def check_finetune_flags(given: dict[str, Any] | TrainConfig) -> None:
    """Refuse settings that contradict the base model: a tokenizer, vocabulary or shape
    (``given``: the flags given, or a config whose non-default values count as given)."""
    if isinstance(given, TrainConfig):
        defaults = TrainConfig()
        given = {
            n: getattr(given, n) for n in _REFUSED if getattr(given, n) != getattr(defaults, n)
        }
    bad = [n for n in _REFUSED if n in given]
    if bad:
        flags = ", ".join("--" + n.replace("_", "-") for n in bad)
        raise ValueError(
            f"{flags} cannot be combined with --init-from: a fine-tune keeps the base model's "
            "own tokenizer and shape; drop the flag (or train from scratch without --init-from)"
        )


@dataclass(kw_only=True)
class FinetuneBase:
    """The model a fine-tune starts from: where it is, its content hash, model, tokenizer."""

    reference: str
    location: Path
    sha256: str
    model: nn.Module
    tokenizer: Tokenizer

    @property
    def masked_lm(self) -> bool:
        from qkv.models import BertForMaskedLM

        return isinstance(self.model, BertForMaskedLM)


def open_base(config: TrainConfig) -> FinetuneBase:
    """Load ``config.init_from`` with its tokenizer; check the run fits the model."""
    from qkv.io import load, load_tokenizer
    from qkv.io.api import checked_model_dir, model_file_names
    from qkv.io.hub import resolve_model
    from qkv.io.lora import base_sha256
    from qkv.models import Bert, BertForMaskedLM

    assert config.init_from is not None
    check_finetune_flags(config)
    if config.fsdp:
        raise ValueError(
            "--fsdp is not supported with --init-from yet (a fine-tune's checkpoints are "
            "written from the unsharded model); drop --fsdp (DDP under torchrun works)"
        )
    reference = config.init_from
    location = resolve_model(reference, None)
    if location.is_file():
        location = location.parent
    if location.is_dir():  # a local path is kept absolute, so the adapter finds it again
        location = checked_model_dir(location.resolve())
        if Path(reference).expanduser().exists():
            reference = str(location)
    if not (location / "config.json").is_file():
        raise ValueError(
            f"--init-from {config.init_from}: {location} holds no full model (config.json); "
            "a LoRA checkpoint must be merged first (`qkv merge`) to fine-tune it further"
        )
    torch.manual_seed(config.seed)
    model = load(location)
    if isinstance(model, Bert) and not isinstance(model, BertForMaskedLM):
        raise ValueError(
            f"--init-from {config.init_from} is a BERT without a masked-LM head (BertModel); "
            "fine-tuning needs BertForMaskedLM weights to train on masked-LM batches"
        )
    try:
        tokenizer = load_tokenizer(location)
    except (FileNotFoundError, ValueError) as error:
        raise ValueError(
            f"--init-from {config.init_from}: no usable tokenizer beside the model ({error}); "
            "a fine-tune uses the model's own tokenizer: put its tokenizer.json in the folder"
        ) from None
    n_positions = getattr(model.config, "n_positions", None)
    if n_positions is not None and config.block_size > n_positions:
        raise ValueError(
            f"--block-size {config.block_size} exceeds the context of {config.init_from} "
            f"({n_positions} positions); pass --block-size {n_positions} or less"
        )
    return FinetuneBase(
        reference=reference,
        location=location,
        sha256=base_sha256(location, model_file_names(location)),
        model=model,
        tokenizer=tokenizer,
    )


def is_records(config: TrainConfig) -> bool:
    """True when the run's data is JSONL records (instruction / chat), not plain text."""
    from qkv.data.records import is_records_file

    if config.val_data is not None and not is_records_file(config.val_data):
        raise ValueError(
            f"--val-data {config.val_data}: validation files are JSONL records (.jsonl); for "
            "plain text the validation split is the last --val-fraction of --data"
        )
    return config.data is not None and is_records_file(config.data)


def lora_settings(config: TrainConfig) -> Any:
    from qkv.io.lora import LoraSettings

    return LoraSettings(
        r=config.lora_r,
        alpha=config.lora_alpha,
        dropout=config.lora_dropout,
        targets=config.lora_targets,
    )


def prepare_model(config: TrainConfig, base: FinetuneBase) -> nn.Module:
    """The model a fine-tune trains: the base itself, or the base with LoRA layers (seeded
    by ``config.seed``) and everything else frozen."""
    from qkv.io.lora import apply_lora

    model = base.model
    _set_dropout(model, config.dropout)
    if config.lora_r == 0:
        return model
    torch.manual_seed(config.seed)
    return apply_lora(model, lora_settings(config))


def _set_dropout(model: nn.Module, p: float) -> None:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = p
        elif hasattr(module, "dropout") and isinstance(module.dropout, float):
            module.dropout = p


def load_checkpoint_weights(model: nn.Module, directory: Path, base: FinetuneBase) -> None:
    """Put a fine-tune checkpoint's trained weights (adapter, or full model) into ``model``."""
    from qkv.io.lora import is_adapter_dir, load_adapter_into, read_base
    from qkv.training.prepare import load_weights

    if not is_adapter_dir(directory):
        load_weights(model, directory)
        return
    saved = read_base(directory)["sha256"]
    if saved != base.sha256:
        raise ValueError(
            f"the base model {base.location} changed since the LoRA adapter {directory} was "
            f"trained on it (content hash {base.sha256[:12]}..., the adapter was trained on "
            f"{saved[:12]}...); restore that base model or start a new run with --out-dir"
        )
    load_adapter_into(model, directory)


def write_model_files(model: nn.Module, directory: Path, base: FinetuneBase) -> None:
    """A fine-tune checkpoint's model files: the adapter (LoRA) or the whole model, and the
    base's tokenizer with its special tokens and chat template."""
    from qkv.io.lora import save_adapter
    from qkv.training.checkpoint import save_model_dir

    if hasattr(model, "qkv_lora"):
        save_adapter(model, directory, base=base.reference, base_hash=base.sha256)
    else:
        save_model_dir(model, directory)
    base.tokenizer.save(directory)


def describe(config: TrainConfig) -> str:
    """One line saying what the fine-tune trains."""
    if config.lora_r == 0:
        return f"full fine-tuning of {config.init_from}"
    return (
        f"LoRA (r={config.lora_r}, alpha={config.lora_alpha}, targets {config.lora_targets}) "
        f"on {config.init_from}"
    )
