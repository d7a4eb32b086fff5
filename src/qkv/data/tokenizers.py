"""Tokenizers for a training corpus: ``build_tokenizer(kind, text)`` trains a char or BPE
:class:`~qkv.data.tokenizer.Tokenizer`, and ``encode_text`` tokenizes a whole corpus fast.

Both kinds are qkv ``Tokenizer`` objects (see :mod:`qkv.data.tokenizer_backends` for how
they tokenize); saved with ``tokenizer.save(dir)`` they open with ``qkv.load_tokenizer(dir)``
(and their tokenizer.json with ``tokenizers.Tokenizer.from_file``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from qkv.data.tokenizer import Tokenizer
from qkv.data.tokenizer_backends import (
    MASK,
    PAD,
    TOKENIZER_KINDS,
    UNK,
    TokenizerKind,
    special_tokens,
)

__all__ = [
    "MASK",
    "PAD",
    "TOKENIZER_KINDS",
    "UNK",
    "TokenizerKind",
    "build_tokenizer",
    "decode_ids",
    "encode_text",
    "special_tokens",
    "tokenizer_kind",
    "train_bpe_tokenizer",
    "train_char_tokenizer",
]

# GPT-2's pre-tokenizer never puts a non-space character and a following newline in one piece,
# and its pattern only looks ahead, so a text cut just before a newline that follows a
# non-space character encodes to exactly the tokens of the whole text (tested).
_SAFE_CUT = re.compile(r"(?<=\S)(?=\n)")


def train_char_tokenizer(text: str, *, masked_lm: bool = False) -> Tokenizer:
    """A character-level tokenizer whose vocabulary is the sorted set of characters of ``text``
    (:meth:`Tokenizer.train_char`).

    Example::

        >>> tok = train_char_tokenizer("hello world")
        >>> tok.decode(tok.encode("hello"))
        'hello'
    """
    return Tokenizer.train_char(text, masked_lm=masked_lm)


def train_bpe_tokenizer(
    lines: Iterable[str], *, vocab_size: int, masked_lm: bool = False
) -> Tokenizer:
    """A byte-level BPE tokenizer with ``vocab_size`` tokens trained on ``lines``
    (:meth:`Tokenizer.train_bpe`)."""
    return Tokenizer.train_bpe(lines, vocab_size=vocab_size, masked_lm=masked_lm)


def build_tokenizer(
    kind: str, text: str, *, vocab_size: int = 512, masked_lm: bool = False
) -> Tokenizer:
    """Train a tokenizer of ``kind`` (``"char"`` or ``"bpe"``) on ``text``."""
    if kind == "char":
        return Tokenizer.train_char(text, masked_lm=masked_lm)
    if kind == "bpe":
        return Tokenizer.train_bpe(text, vocab_size=vocab_size, masked_lm=masked_lm)
    raise ValueError(f"unknown tokenizer {kind!r}; expected one of {', '.join(TOKENIZER_KINDS)}")


def tokenizer_kind(tokenizer: Tokenizer | Any) -> str:
    """``"char"`` for a WordLevel tokenizer built here, ``"bpe"`` for byte-level BPE."""
    import json

    model_type = json.loads(tokenizer.to_str())["model"]["type"]
    return "char" if model_type == "WordLevel" else "bpe"


def _chunks(text: str, size: int = 1 << 16) -> Iterator[str]:
    """Cut ``text`` into pieces of about ``size`` characters at token-safe points."""
    pieces = _SAFE_CUT.split(text)
    buffer: list[str] = []
    length = 0
    for piece in pieces:
        buffer.append(piece)
        length += len(piece)
        if length >= size:
            yield "".join(buffer)
            buffer, length = [], 0
    if buffer:
        yield "".join(buffer)


def encode_text(tokenizer: Tokenizer | Any, text: str) -> np.ndarray:
    """Token ids of ``text`` as an int64 array (N,), equal to ``tokenizer.encode(text)``
    without special tokens added by a post-processor (the tokenizers built here add none).

    ``tokenizer`` is a qkv :class:`Tokenizer` (a raw ``tokenizers.Tokenizer`` is wrapped).
    Character tokenizers use a vectorised lookup; BPE encodes token-safe chunks in batches,
    which is what makes a multi-megabyte corpus quick and light on memory.
    """
    tokenizer = Tokenizer.wrap(tokenizer)
    if tokenizer_kind(tokenizer) == "char":
        vocab = tokenizer.get_vocab()
        unk = vocab[UNK]
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)  # (N,)
        table = {ord(token): index for token, index in vocab.items() if len(token) == 1}
        uniques, inverse = np.unique(codes, return_inverse=True)
        mapped = np.array([table.get(int(code), unk) for code in uniques], dtype=np.int64)
        return mapped[inverse] if len(codes) else np.zeros(0, dtype=np.int64)
    ids: list[int] = []
    batch: list[str] = []
    for chunk in _chunks(text):
        batch.append(chunk)
        if len(batch) == 16:
            ids.extend(i for row in tokenizer.encode_batch(batch) for i in row)
            batch = []
    if batch:
        ids.extend(i for row in tokenizer.encode_batch(batch) for i in row)
    return np.asarray(ids, dtype=np.int64)


def decode_ids(tokenizer: Tokenizer | Any, ids: Iterable[int]) -> str:
    """Text of ``ids``, special tokens dropped."""
    return tokenizer.decode(list(ids), skip_special_tokens=True)
