"""Reading a saved tokenizer: a Hugging Face ``tokenizers`` ``tokenizer.json`` (BPE, byte-level
BPE, WordPiece, char level: whatever qkv, a training run or the Hub saved), or, when only a
WordPiece ``vocab.txt`` is present, the BERT tokenizer built from it with ``do_lower_case``
taken from ``tokenizer_config.json``.

Special tokens (pad, eos, bos, unk, cls, sep, mask) come from ``tokenizer_config.json`` /
``special_tokens_map.json`` and, failing those, from the tokenizer's own vocabulary with
conventional names. As transformers (>= 5) loads a directory with a ``tokenizer.json``: the
tokens of ``added_tokens_decoder`` and the named special tokens that the tokenizer.json lacks
are added to it, and whether a BOS/EOS is added to each text is the tokenizer.json's
post-processor's business (``add_bos_token`` / ``add_eos_token`` are read only with a
``vocab.txt``). The chat template(s) come with it (:func:`qkv.data.chat.read_chat_templates`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qkv.atomic import read_json
from qkv.data.chat import Templates, read_chat_templates
from qkv.data.tokenizer_backends import wordpiece_backend

ROLES = ("pad", "eos", "bos", "unk", "cls", "sep", "mask")
# Conventional spellings, tried when no config names the token of a role.
_CONVENTIONAL = {
    "pad": ("[PAD]", "<pad>", "<|pad|>", "<|padding|>"),
    "eos": ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "<|eos|>", "[EOS]"),
    "bos": ("<s>", "<|begin_of_text|>", "<bos>", "<|bos|>", "[BOS]"),
    "unk": ("[UNK]", "<unk>", "<|unk|>"),
    "cls": ("[CLS]",),
    "sep": ("[SEP]",),
    "mask": ("[MASK]", "<mask>"),
}
# HF writes a huge sentinel as model_max_length when there is no limit.
_NO_LIMIT = 1_000_000


@dataclass(kw_only=True)
class SavedTokenizer:
    """What a tokenizer directory holds: the backend, the special-token roles found in its
    vocabulary, ``model_max_length``, the chat template(s), and the named special tokens as
    the configs spell them (the chat template's ``bos_token`` / ``eos_token`` / ... )."""

    backend: Any
    roles: dict[str, str]
    model_max_length: int | None = None
    chat_template: Templates | None = None
    template_tokens: dict[str, str] = field(default_factory=dict)


def read_tokenizer(path: str | os.PathLike[str]) -> SavedTokenizer:
    """The tokenizer saved in directory ``path`` or in the ``tokenizer.json`` file ``path``
    (configs read from its directory)."""
    location = Path(path)
    if location.is_file() and location.suffix == ".json":
        directory, tokenizer_file = location.parent, location
    elif location.is_dir():
        directory, tokenizer_file = location, location / "tokenizer.json"
    else:
        raise FileNotFoundError(f"no tokenizer at {location}: neither a directory nor a .json file")
    config = _optional_json(directory / "tokenizer_config.json")
    special = _optional_json(directory / "special_tokens_map.json")
    configured = _configured_roles(config, special)
    if tokenizer_file.is_file():
        backend = read_backend(tokenizer_file)
        _add_missing_tokens(backend, config, configured)
    elif (directory / "vocab.txt").is_file():
        backend = wordpiece_backend(directory / "vocab.txt", roles=configured, config=config)
    else:
        raise FileNotFoundError(
            f"no tokenizer in {directory}: expected tokenizer.json (Hugging Face tokenizers) "
            "or vocab.txt (WordPiece); save one with Tokenizer.save(path)"
        )
    max_length = config.get("model_max_length")
    if not isinstance(max_length, int) or max_length > _NO_LIMIT:
        max_length = None
    roles = special_token_roles(backend, config, special)
    return SavedTokenizer(
        backend=backend,
        roles=roles,
        model_max_length=max_length,
        chat_template=read_chat_templates(directory),
        # transformers gives a template the tokens the configs name; without configs, qkv's roles
        template_tokens=configured if (config or special) else dict(roles),
    )


def _add_missing_tokens(backend: Any, config: dict, configured: dict[str, str]) -> None:
    """Add, as transformers does on loading, the ``added_tokens_decoder`` entries and named
    special tokens of the configs that the tokenizer.json lacks (in id order, then roles)."""
    from tokenizers import AddedToken

    present = {token.content for token in backend.get_added_tokens_decoder().values()}
    vocab = backend.get_vocab(with_added_tokens=True)
    missing = []
    decoder = config.get("added_tokens_decoder")
    if isinstance(decoder, dict):
        for _, entry in sorted(decoder.items(), key=lambda item: int(item[0])):
            content = entry.get("content") if isinstance(entry, dict) else None
            if isinstance(content, str) and content not in present:
                options = {k: bool(entry[k]) for k in _ADDED_FLAGS if k in entry}
                missing.append(AddedToken(content, **options))
                present.add(content)
    for token in configured.values():
        if token not in present and token not in vocab:
            missing.append(AddedToken(token, special=True))
            present.add(token)
    if missing:
        backend.add_tokens(missing)


_ADDED_FLAGS = ("single_word", "lstrip", "rstrip", "normalized", "special")


def read_backend(tokenizer_file: Path) -> Any:
    """The ``tokenizers.Tokenizer`` of a tokenizer.json, or ValueError naming the file."""
    from tokenizers import Tokenizer as Backend

    try:
        return Backend.from_file(str(tokenizer_file))
    except Exception as error:  # tokenizers raises a plain Exception on bad JSON
        raise ValueError(
            f"{tokenizer_file} could not be read as a tokenizers file: {error}"
        ) from None


def special_token_roles(
    backend: Any, config: dict | None = None, special: dict | None = None
) -> dict[str, str]:
    """{role: token} for every role whose token is in the vocabulary: named by ``config``
    (tokenizer_config.json) or ``special`` (special_tokens_map.json), else by convention."""
    config, special = config or {}, special or {}
    vocab = backend.get_vocab(with_added_tokens=True)
    roles: dict[str, str] = {}
    for role in ROLES:
        for source in (config, special):
            token = _token_text(source.get(f"{role}_token"))
            if token is not None and token in vocab:
                roles[role] = token
                break
        else:
            for token in _CONVENTIONAL[role]:
                if token in vocab:
                    roles[role] = token
                    break
    if "pad" not in roles:
        padding = json.loads(backend.to_str()).get("padding") or {}
        if padding.get("pad_token") in vocab:
            roles["pad"] = padding["pad_token"]
    return roles


def _configured_roles(config: dict, special: dict) -> dict[str, str]:
    """{role: token} as the config files name them (in or out of any vocabulary)."""
    roles = {}
    for role in ROLES:
        token = _token_text(config.get(f"{role}_token") or special.get(f"{role}_token"))
        if token is not None:
            roles[role] = token
    return roles


def _optional_json(path: Path) -> dict:
    return read_json(path) if path.is_file() else {}


def _token_text(value: object) -> str | None:
    """A special token entry is a string or an AddedToken dict ``{"content": ...}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None
