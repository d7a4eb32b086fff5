"""Tokenizers trained on a corpus and saved as Hugging Face ``tokenizers`` tokenizer.json.

Two kinds, both plain :class:`tokenizers.Tokenizer` objects so a checkpoint's tokenizer.json
opens with ``qkv.load_tokenizer(dir)`` or ``tokenizers.Tokenizer.from_file``:

* ``char``: one token per Unicode character seen in the corpus (a WordLevel model behind a
  pre-tokenizer that isolates every character, and a ``Fuse`` decoder that joins them back
  without spaces), so ``decode(encode(text)) == text`` for any text made of corpus characters.
* ``bpe``: byte-level BPE (GPT-2 style) trained on the corpus; any text round-trips.

Special tokens (``[UNK]``, and ``[PAD]``/``[MASK]`` for masked-LM training) sit at the end of
the vocabulary so the ids of ordinary characters do not depend on them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

TokenizerKind = Literal["char", "bpe"]
TOKENIZER_KINDS: tuple[str, ...] = ("char", "bpe")
UNK = "[UNK]"
PAD = "[PAD]"
MASK = "[MASK]"
# GPT-2's pre-tokenizer never puts a non-space character and a following newline in one piece,
# and its pattern only looks ahead, so a text cut just before a newline that follows a
# non-space character encodes to exactly the tokens of the whole text (tested).
_SAFE_CUT = re.compile(r"(?<=\S)(?=\n)")


def special_tokens(masked_lm: bool) -> list[str]:
    """The special tokens appended to a vocabulary: [UNK], plus [PAD] and [MASK] for BERT."""
    return [UNK, PAD, MASK] if masked_lm else [UNK]


def train_char_tokenizer(text: str, *, masked_lm: bool = False) -> Tokenizer:
    """A character-level tokenizer whose vocabulary is the sorted set of characters of ``text``.

    Example::

        >>> tok = train_char_tokenizer("hello world")
        >>> tok.decode(tok.encode("hello").ids)
        'hello'
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    if not text:
        raise ValueError("cannot build a character tokenizer from an empty text; pass a corpus")
    vocab = {char: index for index, char in enumerate(sorted(set(text)))}
    for token in special_tokens(masked_lm):
        vocab[token] = len(vocab)
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    tokenizer.add_special_tokens(special_tokens(masked_lm))
    return tokenizer


def train_bpe_tokenizer(
    lines: Iterable[str], *, vocab_size: int, masked_lm: bool = False
) -> Tokenizer:
    """A byte-level BPE tokenizer with ``vocab_size`` tokens trained on ``lines``.

    ``vocab_size`` must leave room for the 256 byte tokens and the special tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    minimum = 256 + len(special_tokens(masked_lm)) + 1
    if vocab_size < minimum:
        raise ValueError(
            f"BPE vocab_size={vocab_size} is too small: byte-level BPE needs at least {minimum} "
            f"(256 bytes + special tokens + 1 merge); pass --vocab-size {minimum} or more"
        )
    if vocab_size > 2**32 - 1:
        raise ValueError(f"BPE vocab_size={vocab_size} does not fit in uint32 token ids")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=special_tokens(masked_lm),
        show_progress=False,
    )
    tokenizer.train_from_iterator(lines, trainer=trainer)
    return tokenizer


def build_tokenizer(
    kind: str, text: str, *, vocab_size: int = 512, masked_lm: bool = False
) -> Tokenizer:
    """Train a tokenizer of ``kind`` (``"char"`` or ``"bpe"``) on ``text``."""
    if kind == "char":
        return train_char_tokenizer(text, masked_lm=masked_lm)
    if kind == "bpe":
        return train_bpe_tokenizer(
            text.splitlines(keepends=True), vocab_size=vocab_size, masked_lm=masked_lm
        )
    raise ValueError(f"unknown tokenizer {kind!r}; expected one of {', '.join(TOKENIZER_KINDS)}")


def tokenizer_kind(tokenizer: Tokenizer) -> str:
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


def encode_text(tokenizer: Tokenizer, text: str) -> np.ndarray:
    """Token ids of ``text`` as an int64 array (N,), equal to ``tokenizer.encode(text).ids``.

    Character tokenizers use a vectorised lookup; BPE encodes token-safe chunks in batches,
    which is what makes a multi-megabyte corpus quick and light on memory.
    """
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
            ids.extend(i for encoding in tokenizer.encode_batch(batch) for i in encoding.ids)
            batch = []
    if batch:
        ids.extend(i for encoding in tokenizer.encode_batch(batch) for i in encoding.ids)
    return np.asarray(ids, dtype=np.int64)


def decode_ids(tokenizer: Tokenizer, ids: Iterable[int]) -> str:
    """Text of ``ids`` (special tokens dropped)."""
    return tokenizer.decode(list(ids))
