"""Tokenize a corpus once into a memory-mapped token file, cached by content and tokenizer.

The file lives at ``<cache>/tokens/<key>.<dtype>.bin`` where ``key`` hashes the corpus text and
the tokenizer's JSON, and ``dtype`` is uint16 when every id fits, else uint32. It is written
atomically (:mod:`qkv.atomic`), so a crash never leaves a truncated cache entry.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qkv.atomic import write_bytes_atomic
from qkv.data.tokenizers import encode_text

if TYPE_CHECKING:
    from qkv.data.tokenizer import Tokenizer


def cache_dir() -> Path:
    """The qkv cache folder: ``$QKV_CACHE`` or ``~/.cache/qkv``."""
    return Path(os.environ.get("QKV_CACHE") or Path.home() / ".cache" / "qkv").expanduser()


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when all ids fit (vocab ≤ 65536), else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def tokenizer_hash(tokenizer: Tokenizer) -> str:
    """Hex SHA-256 of the tokenizer's canonical JSON."""
    return hashlib.sha256(tokenizer.to_str().encode("utf-8")).hexdigest()


def cached_tokens(
    text: str, text_sha256: str, tokenizer: Tokenizer, *, root: Path | None = None
) -> np.memmap:
    """Token ids of ``text`` as a read-only memmap (N,), tokenizing only on a cache miss.

    ``text_sha256`` is the hex SHA-256 of ``text`` (see :attr:`Corpus.sha256`).
    """
    dtype = token_dtype(tokenizer.get_vocab_size())
    key = hashlib.sha256(f"{text_sha256}:{tokenizer_hash(tokenizer)}".encode()).hexdigest()[:32]
    path = (root or cache_dir()) / "tokens" / f"{key}.{dtype.name}.bin"
    if not path.exists():
        ids = encode_text(tokenizer, text)
        write_bytes_atomic(path, ids.astype(dtype).tobytes())
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=dtype).view(np.memmap)  # np.memmap refuses empty files
    return np.memmap(path, dtype=dtype, mode="r")
