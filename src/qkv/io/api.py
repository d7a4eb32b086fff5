"""``qkv.load`` and ``qkv.save``: one entry point for qkv checkpoints and Hugging Face model
directories (GPT-2, Llama, BERT), on disk or by hub id (resolved by :mod:`qkv.io.hub`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from qkv.data.tokenizer import Tokenizer
from qkv.io.checkpoint import is_qkv_config, load_qkv, save_qkv
from qkv.io.files import read_json
from qkv.io.hf import load_hf, save_hf, supported
from qkv.io.hub import resolve_model
from qkv.io.integrity import read_manifest, verified_while_reading
from qkv.io.run_folder import checkpoint_of_run, confined_location, is_run_folder
from qkv.io.state import finish


def load(
    path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Open a model directory, or a Hugging Face hub id, as a qkv model in eval mode.

    ``path`` is a local folder or a hub id (``"Qwen/Qwen2.5-0.5B"``, fetched into the
    huggingface_hub cache at ``revision``, or read from it when ``HF_HUB_OFFLINE=1``; a local
    folder of the same spelling wins; see :func:`qkv.io.hub.resolve_model`). The folder is a
    qkv checkpoint (``config.json`` with ``"format": "qkv"`` +
    ``model.safetensors``, see :mod:`qkv.io.checkpoint`), a ``qkv train`` run folder (its
    ``best`` checkpoint, else its ``latest``), or a Hugging Face directory
    (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``) of GPT-2
    (GPT2LMHeadModel / GPT2Model), Llama (LlamaForCausalLM / LlamaModel) or BERT (BertModel,
    BertForMaskedLM, sentence-transformers directories).
    ``dtype`` casts the weights (default: as stored); ``device`` moves them.

    GPT-2 and Llama give a :class:`qkv.models.GPT`, BertModel a :class:`qkv.models.Bert`,
    BertForMaskedLM a :class:`qkv.models.BertForMaskedLM`. Every tensor is checked: a
    missing/unexpected tensor, a wrong shape, or a truncated file raises ValueError naming
    the file and the tensor. A checkpoint with a manifest (``checkpoint.json``, as
    ``qkv train`` writes) has the SHA-256 of its config and weights checked first: a changed
    file raises ValueError naming it; folders without one load unchecked.

    Example::

        >>> model = qkv.load("gpt2-dir", dtype=torch.bfloat16)
        >>> model = qkv.load("HuggingFaceTB/SmolLM2-135M")   # a hub id
        >>> logits = model(ids)    # (B, T, vocab)
    """
    location = resolve_model(path, revision)
    if location.is_file():
        location = location.parent  # config.json or a weights file inside the directory
    if not location.is_dir():
        raise FileNotFoundError(f"no model directory at {location}")
    location = checked_model_dir(location)
    config_file = location / "config.json"
    if not config_file.is_file():
        from qkv.io.lora import is_adapter_dir

        if is_adapter_dir(location):  # a LoRA checkpoint: its base with the adapter applied
            return _load_adapter_checkpoint(location, dtype=dtype, device=device)
    if not config_file.is_file():
        raise FileNotFoundError(
            f"{config_file} not found: a model directory needs config.json beside its weights "
            f"(qkv checkpoints, or Hugging Face {supported()})"
        )
    with verified_while_reading(location, model_file_names(location)):
        raw = read_json(config_file)
        model = load_qkv(location, raw) if is_qkv_config(raw) else load_hf(location, raw)
    return finish(model, dtype, device)


def _load_adapter_checkpoint(directory: Path, **options: Any) -> nn.Module:
    """The base of LoRA checkpoint ``directory`` (by its saved id or path, with the saved
    content hash: a changed base is refused naming both) with the adapter applied."""
    from qkv.io.lora import attach_adapter, base_sha256, check_base, read_base

    reference = read_base(directory)["base"]
    base = resolve_model(reference, None)
    base = checked_model_dir(base.parent if base.is_file() else base)
    check_base(directory, base, base_sha256(base, model_file_names(base)))
    return attach_adapter(load(base, **options), directory)


def checked_model_dir(location: Path) -> Path:
    """The checkpoint folder ``load`` reads for directory ``location``, after the checks that
    make it safe to read: a run folder stands for its best (else latest) checkpoint, a link a
    run folder holds must stay inside it, and a manifest must be well-formed and name only
    the folder's own files. (The files' hashes are checked while they are read.)"""
    location = confined_location(location)
    if not (location / "config.json").is_file() and is_run_folder(location):
        location = checkpoint_of_run(location, prefer="best")
    read_manifest(location)
    return location


def model_file_names(directory: Path) -> list[str]:
    """Names of the files ``load`` may read in ``directory``: config.json and weights."""
    weights = (".safetensors", ".bin", ".index.json")
    return ["config.json", *sorted(p.name for p in directory.iterdir() if p.name.endswith(weights))]


def save(
    model: nn.Module,
    path: str | os.PathLike[str],
    format: Literal["qkv", "hf"] = "qkv",
    *,
    tokenizer: Tokenizer | Any | None = None,
) -> Path:
    """Write ``model`` into directory ``path`` (created if needed); returns the directory.

    ``format="qkv"``: ``model.safetensors`` + ``config.json`` holding the qkv config (see
    :mod:`qkv.io.checkpoint`); :func:`load` restores the exact model. ``format="hf"``: a
    Hugging Face directory (``config.json`` with ``model_type``/``architectures``,
    ``model.safetensors`` with HF names) that ``transformers``' ``from_pretrained`` opens as
    GPT2LMHeadModel, LlamaForCausalLM, BertModel or BertForMaskedLM. ``tokenizer`` (a qkv
    ``Tokenizer``, or a raw ``tokenizers.Tokenizer``) is saved beside the weights when given.
    Each file is written atomically (temp file, fsync, rename), weights before config.json,
    so an interrupted save never leaves a directory that loads wrong weights.

    Example::

        >>> qkv.save(model, "runs/baby-gpt")              # qkv format
        >>> qkv.save(model, "export/gpt2", format="hf")   # transformers can open it
    """
    if format not in ("qkv", "hf"):
        raise ValueError(f"format must be 'qkv' or 'hf', got {format!r}")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch nn.Module, got {type(model).__name__}")
    directory = Path(path)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory} exists and is not a directory; save needs a directory path")
    directory.mkdir(parents=True, exist_ok=True)
    if format == "qkv":
        save_qkv(model, directory)
    else:
        save_hf(model, directory)
    if tokenizer is not None:
        Tokenizer.wrap(tokenizer).save(directory)
    return directory
