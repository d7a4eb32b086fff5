"""``qkv.load_tokenizer``: the tokenizer saved beside a model, behind one small interface.

Reads a Hugging Face ``tokenizers`` ``tokenizer.json`` (BPE, byte-level BPE, WordPiece, char
level: whatever the training engineer or the Hub saved), or, when only a WordPiece
``vocab.txt`` is present, builds the BERT tokenizer from it with ``do_lower_case`` taken from
``tokenizer_config.json``. Special tokens (pad, eos, bos, unk, cls, sep, mask) come from
``tokenizer_config.json`` / ``special_tokens_map.json`` and, failing those, from the
tokenizer's own added special tokens with conventional names.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from qkv.io.files import read_json, write_atomic, write_json_atomic

_ROLES = ("pad", "eos", "bos", "unk", "cls", "sep", "mask")
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


class Tokenizer:
    """A text ↔ token-id converter wrapping a ``tokenizers.Tokenizer``.

    Example::

        >>> tok = qkv.load_tokenizer(qkv.io.pretrained_path("all-minilm-l6-v2"))
        >>> tok.encode("Hello world")
        [101, 7592, 2088, 102]
        >>> batch = tok(["a b", "a"], max_length=16)   # input_ids (2, 4), attention_mask ...
    """

    def __init__(
        self,
        backend: Any,
        *,
        special_tokens: dict[str, str] | None = None,
        model_max_length: int | None = None,
    ) -> None:
        backend.no_padding()
        backend.no_truncation()
        self.backend = backend
        self.model_max_length = model_max_length
        self._special_tokens = dict(special_tokens or {})
        self._truncation: int | None = None

    # --- metadata -----------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included (the embedding table needs this many rows)."""
        return int(self.backend.get_vocab_size(with_added_tokens=True))

    def token_id(self, role: str) -> int | None:
        """The id of the special token playing ``role`` (pad, eos, bos, unk, cls, sep, mask)."""
        token = self._special_tokens.get(role)
        return None if token is None else self.backend.token_to_id(token)

    @property
    def pad_token_id(self) -> int | None:
        return self.token_id("pad")

    @property
    def eos_token_id(self) -> int | None:
        return self.token_id("eos")

    @property
    def bos_token_id(self) -> int | None:
        return self.token_id("bos")

    @property
    def special_ids(self) -> list[int]:
        """Sorted ids of every special token (added special tokens and named roles)."""
        ids = {
            index
            for index, token in self.backend.get_added_tokens_decoder().items()
            if token.special
        }
        ids |= {self.token_id(role) for role in self._special_tokens}
        return sorted(i for i in ids if isinstance(i, int))

    # --- conversion ---------------------------------------------------------------------
    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text`` (no truncation), with the model's special tokens if asked."""
        self._set_truncation(None)
        return list(self.backend.encode(text, add_special_tokens=add_special_tokens).ids)

    def encode_batch(
        self,
        texts: Sequence[str],
        add_special_tokens: bool = True,
        max_length: int | None = None,
    ) -> list[list[int]]:
        """Token ids of each text (in Rust, in parallel), cut to ``max_length`` if given."""
        self._set_truncation(max_length)
        encodings = self.backend.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        return [list(e.ids) for e in encodings]

    def decode(self, ids: Sequence[int] | Tensor, skip_special_tokens: bool = False) -> str:
        """Text of ``ids`` (a list or 1-D tensor)."""
        return self.backend.decode(_as_list(ids), skip_special_tokens=skip_special_tokens)

    def tokens(self, ids: Sequence[int] | Tensor) -> list[str]:
        """The token string of each id (``"##ing"``, ``"Ġthe"``, ...), for display."""
        vocab_size = self.vocab_size
        out = []
        for i in _as_list(ids):
            if not 0 <= i < vocab_size:
                raise ValueError(f"token id {i} is out of range for a vocabulary of {vocab_size}")
            out.append(self.backend.id_to_token(i))
        return out

    def __call__(
        self,
        texts: str | Sequence[str],
        padding: bool = True,
        truncation: bool = True,
        max_length: int | None = None,
    ) -> dict[str, Tensor]:
        """Encode a batch: ``input_ids``, ``attention_mask``, ``token_type_ids``, each (B, T).

        ``padding=True`` pads to the longest text (right side) with the pad token (id 0 when
        the tokenizer has none; ``attention_mask`` marks the real tokens either way).
        ``truncation=True`` cuts each text to ``max_length`` tokens, special tokens included
        (default: the tokenizer's ``model_max_length``, when it has one). With
        ``padding=False`` every text must have the same length.
        """
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            raise ValueError("texts is empty; pass at least one string")
        limit = (max_length or self.model_max_length) if truncation else None
        if limit is not None and limit < 1:
            raise ValueError(f"max_length must be ≥ 1, got {limit}")
        self._set_truncation(limit)
        encodings = self.backend.encode_batch(list(texts))
        lengths = [len(e.ids) for e in encodings]
        width = max(lengths)
        if not padding and len(set(lengths)) > 1:
            raise ValueError(
                f"texts encode to different lengths {sorted(set(lengths))} and padding=False; "
                "pass padding=True or texts of equal token length"
            )
        pad_id = self.pad_token_id if self.pad_token_id is not None else 0
        ids = torch.full((len(encodings), width), pad_id, dtype=torch.long)  # (B, T)
        mask = torch.zeros((len(encodings), width), dtype=torch.long)  # (B, T)
        types = torch.zeros((len(encodings), width), dtype=torch.long)  # (B, T)
        for row, encoding in enumerate(encodings):
            n = lengths[row]
            ids[row, :n] = torch.tensor(encoding.ids, dtype=torch.long)
            mask[row, :n] = 1
            types[row, :n] = torch.tensor(encoding.type_ids, dtype=torch.long)
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}

    def _set_truncation(self, limit: int | None) -> None:
        if limit == self._truncation:
            return
        if limit is None:
            self.backend.no_truncation()
        else:
            self.backend.enable_truncation(limit)
        self._truncation = limit

    # --- persistence --------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``tokenizer.json`` and ``tokenizer_config.json`` into directory ``path``.

        Both files are written atomically; Hugging Face ``AutoTokenizer`` opens the directory
        too. Returns the directory.
        """
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        self._set_truncation(None)
        text = self.backend.to_str(pretty=True)
        write_atomic(directory / "tokenizer.json", lambda tmp: tmp.write_text(text, "utf-8"))
        config: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast"}
        config.update({f"{role}_token": tok for role, tok in self._special_tokens.items()})
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        write_json_atomic(directory / "tokenizer_config.json", config)
        return directory

    def __repr__(self) -> str:
        roles = ", ".join(f"{r}={t!r}" for r, t in self._special_tokens.items())
        return f"Tokenizer(vocab_size={self.vocab_size}, {roles})"


def _as_list(ids: Sequence[int] | Tensor) -> list[int]:
    if isinstance(ids, Tensor):
        if ids.dim() != 1:
            raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}; decode one row")
        return [int(i) for i in ids.tolist()]
    return [int(i) for i in ids]


def load_tokenizer(path: str | os.PathLike[str]) -> Tokenizer:
    """Open the tokenizer saved in directory ``path`` (or a ``tokenizer.json`` file).

    Prefers ``tokenizer.json``; falls back to a WordPiece ``vocab.txt`` (BERT) with
    ``do_lower_case`` from ``tokenizer_config.json`` (default True, as BERT's).

    Example::

        >>> tok = qkv.load_tokenizer("runs/shakespeare")
        >>> tok.decode(tok.encode("To be"))
        'To be'
    """
    from tokenizers import Tokenizer as Backend

    location = Path(path)
    if location.is_file() and location.suffix == ".json":
        directory, tokenizer_file = location.parent, location
    elif location.is_dir():
        directory, tokenizer_file = location, location / "tokenizer.json"
    else:
        raise FileNotFoundError(f"no tokenizer at {location}: neither a directory nor a .json file")
    config = _optional_json(directory / "tokenizer_config.json")
    special = _optional_json(directory / "special_tokens_map.json")
    if tokenizer_file.is_file():
        try:
            backend = Backend.from_file(str(tokenizer_file))
        except Exception as error:  # tokenizers raises a plain Exception on bad JSON
            raise ValueError(
                f"{tokenizer_file} could not be read as a tokenizers file: {error}"
            ) from None
    elif (directory / "vocab.txt").is_file():
        backend = _wordpiece(directory / "vocab.txt", config, special)
    else:
        raise FileNotFoundError(
            f"no tokenizer in {directory}: expected tokenizer.json (Hugging Face tokenizers) "
            "or vocab.txt (WordPiece); save one with Tokenizer.save(path)"
        )
    roles = _special_tokens(backend, config, special)
    max_length = config.get("model_max_length")
    if not isinstance(max_length, int) or max_length > 1_000_000:
        max_length = None  # HF writes a huge sentinel when there is no limit
    return Tokenizer(backend, special_tokens=roles, model_max_length=max_length)


def _optional_json(path: Path) -> dict:
    return read_json(path) if path.is_file() else {}


def _token_text(value: object) -> str | None:
    """A special token entry is a string or an AddedToken dict ``{"content": ...}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _special_tokens(backend: Any, config: dict, special: dict) -> dict[str, str]:
    vocab = backend.get_vocab(with_added_tokens=True)
    roles: dict[str, str] = {}
    for role in _ROLES:
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


def _wordpiece(vocab_file: Path, config: dict, special: dict) -> Any:
    from tokenizers import Tokenizer as Backend
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors

    tokens = vocab_file.read_text(encoding="utf-8").splitlines()
    vocab = {token: index for index, token in enumerate(tokens) if token}
    unk = _token_text(config.get("unk_token") or special.get("unk_token")) or "[UNK]"
    cls = _token_text(config.get("cls_token") or special.get("cls_token")) or "[CLS]"
    sep = _token_text(config.get("sep_token") or special.get("sep_token")) or "[SEP]"
    for token in (unk, cls, sep):
        if token not in vocab:
            raise ValueError(f"{vocab_file} lacks the special token {token!r} BERT needs")
    backend = Backend(models.WordPiece(vocab, unk_token=unk, max_input_chars_per_word=100))
    lowercase = bool(config.get("do_lower_case", True))
    strip_accents = config.get("strip_accents")
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=bool(config.get("tokenize_chinese_chars", True)),
        strip_accents=strip_accents if isinstance(strip_accents, bool) else None,
        lowercase=lowercase,
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])],
    )
    backend.decoder = decoders.WordPiece(prefix="##")
    specials = [
        t
        for role in _ROLES
        if (t := _token_text(config.get(f"{role}_token") or special.get(f"{role}_token")))
        and t in vocab
    ]
    backend.add_special_tokens(specials or [unk, cls, sep])
    return backend
