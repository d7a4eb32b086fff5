"""Hub-shaped fixtures shared by the io, data, generation and cli tests: small instruct-style
tokenizers with realistic chat templates (ChatML/Qwen, Llama 3, Gemma), tiny random Llama
model folders with a generation_config.json, and a real huggingface_hub cache made on disk
without a network: what ``snapshot_download`` leaves behind, in its layout.

``<cache>/models--org--name/`` holds ``blobs/<etag>`` (the git blob sha1 of a small file, the
sha256 of an LFS file such as weights), ``snapshots/<commit>/<path>`` as relative symlinks to
those blobs, ``refs/<branch or tag>`` holding the commit hash, and ``trees/<commit>.json``,
the file listing huggingface_hub writes after a download (it is how an offline load knows a
snapshot is complete). Folder names come from huggingface_hub itself (``repo_folder_name``),
and ``scan_cache_dir`` reads the result back (tested).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

LFS_SUFFIXES = (".safetensors", ".bin")
TEMPLATES = Path(__file__).parent / "data" / "chat_templates"
CORPUS = (
    "Hello! How can I help you today? The cat sat on the mat. What is the capital of France? "
    "Paris is the capital of France. Tell me a story about a brave little robot. Once upon a "
    "time there was a robot who loved to read. You are a helpful assistant. 1 2 3 4 5 6 7 8 9\n"
) * 8
# style: (special tokens in id order, tokenizer_config roles, BOS the post-processor adds)
STYLES = {
    "chatml": (
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
        None,
    ),
    "llama3": (
        ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
         "<|eot_id|>", "<|eom_id|>"],
        {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
        "<|begin_of_text|>",
    ),
    "gemma": (
        ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"],
        {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"},
        "<bos>",
    ),
}  # fmt: skip


def chat_template(style: str) -> str:
    return (TEMPLATES / f"{style}.jinja").read_text(encoding="utf-8")


def write_tokenizer(
    directory: Path, style: str, *, template: str | None = "config", max_length: int = 64
) -> Path:
    """A byte-level BPE tokenizer of ``style`` in ``directory``: tokenizer.json (special
    tokens first, BOS added by the post-processor where the style has one) and
    tokenizer_config.json as transformers saves it (``tokenizer_class``,
    ``added_tokens_decoder``, the roles). ``template``: ``"config"`` puts the chat template in
    tokenizer_config.json, ``"file"`` in chat_template.jinja, None leaves it out."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    specials, roles, bos = STYLES[style]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    backend.train_from_iterator([CORPUS], trainer=trainer)
    if bos is not None:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
            special_tokens=[(bos, specials.index(bos))],
        )  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    backend.save(str(directory / "tokenizer.json"))
    config: dict = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": {
            str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                     "single_word": False, "special": True}
            for i, t in enumerate(specials)
        },
        **roles,
        "model_max_length": max_length,
    }  # fmt: skip
    if template == "config":
        config["chat_template"] = chat_template(style)
    elif template == "file":
        (directory / "chat_template.jinja").write_text(chat_template(style), encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2), "utf-8")
    return directory


def write_model(
    directory: Path,
    style: str = "chatml",
    *,
    seed: int = 0,
    eos: list[int] | None = None,
    generation: dict | None = None,
    template: str | None = "config",
    context: int = 64,
) -> Path:
    """A tiny random Llama as a Hugging Face folder (config.json, model.safetensors), with a
    ``style`` tokenizer and generation_config.json (``eos`` ids; ``generation`` extra fields)."""
    import torch

    import qkv
    from qkv.models import GPT, preset

    write_tokenizer(directory, style, template=template, max_length=context)
    vocab = json.loads((directory / "tokenizer.json").read_text())["model"]["vocab"]
    torch.manual_seed(seed)
    model = GPT(preset("llama-nano", vocab_size=len(vocab), n_positions=context))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.5)
    qkv.save(model, directory, format="hf")
    specials = STYLES[style][0]
    end = eos if eos is not None else [specials.index(STYLES[style][1]["eos_token"])]
    config = {"eos_token_id": end if len(end) > 1 else end[0], **(generation or {})}
    (directory / "generation_config.json").write_text(json.dumps(config), "utf-8")
    return directory


def _etag(path: str, data: bytes) -> tuple[str, bool]:
    """(blob name, is LFS) as the hub names a file's blob."""
    if path.endswith(LFS_SUFFIXES):
        return hashlib.sha256(data).hexdigest(), True
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(), False


def add_snapshot(
    cache: Path,
    repo_id: str,
    source: Path,
    *,
    commit: str,
    refs: tuple[str, ...] = ("main",),
    skip: tuple[str, ...] = (),
    listing_extra: tuple[str, ...] = (),
) -> Path:
    """Put every file of folder ``source`` into ``cache`` as snapshot ``commit`` of
    ``repo_id``, pointed to by ``refs``; returns the snapshot folder.

    ``skip``: files listed in the tree listing but absent (an interrupted download);
    ``listing_extra``: files the repository has on the hub that were not downloaded.
    """
    from huggingface_hub.file_download import repo_folder_name

    storage = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    snapshot = storage / "snapshots" / commit
    entries = {}
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = file.relative_to(source).as_posix()
        data = file.read_bytes()
        etag, lfs = _etag(relative, data)
        entries[relative] = (len(data), etag, lfs)
        if relative in skip:
            continue
        blob = storage / "blobs" / etag
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():
            shutil.copyfile(file, blob)
        link = snapshot / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for extra in listing_extra:
        entries[extra] = (1, _etag(extra, extra.encode())[0], extra.endswith(LFS_SUFFIXES))
    for ref in refs:
        ref_file = storage / "refs" / ref
        ref_file.parent.mkdir(parents=True, exist_ok=True)
        ref_file.write_text(commit)  # huggingface_hub writes no newline
    _write_listing(storage, commit, entries)
    return snapshot


def _write_listing(storage: Path, commit: str, entries: dict[str, tuple[int, str, bool]]) -> None:
    """``trees/<commit>.json`` through huggingface_hub's own writer."""
    from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache

    listing = {
        path: TreeCacheEntry(
            size=size,
            blob_id=hashlib.sha1(etag.encode()).hexdigest(),
            lfs_sha256=etag if lfs else None,
            lfs_size=size if lfs else None,
        )
        for path, (size, etag, lfs) in entries.items()
    }
    write_tree_cache(str(storage), commit, listing)
