"""Streaming preparation: a corpus of any size into token shards, in bounded memory.

``prepare_corpus(spec, options)`` reads the source document by document in pieces
(:mod:`qkv.data.sources`), trains the tokenizer if none is given (character set from one pass,
or BPE on the first ``bpe_sample_mb`` megabytes through ``train_from_iterator``), encodes
chunks with ``tokenizers``' batch encoder (its Rust threads use every core) while the next
batch is read, and appends the ids to shards (:mod:`qkv.data.shards`). Each document ends with
the tokenizer's end-of-text token, so training windows may cross documents knowingly.

Chunks are cut where tokens cannot change: anywhere between characters for the character
tokenizer, and for byte-level BPE just before a whitespace character that follows a
non-whitespace one (no GPT-2 pre-token holds a non-space followed by a space, and its pattern
only looks ahead), so the shards hold exactly the ids of encoding each document whole. A run of
more than :data:`MAX_CARRY` characters without such a point is cut anyway.

Everything derived is cached by the source's fingerprint (paths, sizes, modification times):
a second preparation costs a ``stat`` per file, a manifest read and the memmaps' opening.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from qkv.atomic import write_text_atomic
from qkv.data.shards import SHARD_TOKENS, ShardedTokens, ShardWriter, read_manifest, token_dtype
from qkv.data.sources import READ_BYTES, Source, SourceSpec, describe, open_source
from qkv.data.token_cache import cache_dir
from qkv.data.tokenizer import Tokenizer
from qkv.data.tokenizers import UNK, tokenizer_kind

EOT = "<|endoftext|>"
CHUNK_CHARS = 1 << 18  # characters per encoded chunk (char tokenizer)
BATCH_CHARS = 1 << 22  # characters per batch handed to the encoder (char tokenizer)
# tokenizers' batch encoder holds ~400 bytes per character of a batch while it works (the
# normalized strings' alignments, the pre-token splits, the Encodings): 4 Mi characters peaked
# at 783 MB, 512 Ki at 456 MB (235 MB of it imports), at the same speed (2026-12-02, 16 MB).
# 16 chunks a batch keep both cores busy.
BPE_CHUNK_CHARS = 1 << 15
BPE_BATCH_CHARS = 1 << 19
SAMPLE_PIECE_CHARS = 1 << 16  # BPE training: sequences the trainer pre-tokenizes at a time
MAX_CARRY = 1 << 24  # characters kept waiting for a safe cut before cutting anyway
LAYOUT = "qkv-prepared-2"  # bump when the token stream's rules change


@dataclass(frozen=True, kw_only=True)
class PrepareOptions:
    """How to tokenize: ``tokenizer`` kind, BPE ``vocab_size``, masked-LM specials (no
    end-of-text token then), the BPE training sample, and sizes (small ones in tests)."""

    tokenizer: Literal["char", "bpe"] = "char"
    vocab_size: int = 512
    masked_lm: bool = False
    bpe_sample_mb: int = 256
    shard_tokens: int = SHARD_TOKENS
    read_bytes: int = READ_BYTES
    chunk_chars: int | None = None  # default: CHUNK_CHARS (char), BPE_CHUNK_CHARS (bpe)
    batch_chars: int | None = None  # default: BATCH_CHARS (char), BPE_BATCH_CHARS (bpe)

    def __post_init__(self) -> None:
        if self.tokenizer not in ("char", "bpe"):
            raise ValueError(f"tokenizer must be 'char' or 'bpe', got {self.tokenizer!r}")
        for name in ("vocab_size", "bpe_sample_mb", "shard_tokens", "read_bytes",
                     "chunk_chars", "batch_chars"):  # fmt: skip
            value = getattr(self, name)
            if value is None and name in ("chunk_chars", "batch_chars"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"PrepareOptions.{name} must be a positive int, got {value!r}")


@dataclass(kw_only=True)
class PreparedCorpus:
    """The result: tokenizer, all token ids (train and validation, in corpus order), the
    manifest and where the shards are; ``cache_hit`` tells whether anything was tokenized."""

    tokenizer: Tokenizer
    tokens: ShardedTokens
    manifest: dict[str, Any]
    folder: Path
    source: Source
    cache_hit: bool
    skipped: list[str] = field(default_factory=list)

    @property
    def content_sha256(self) -> str:
        return str(self.manifest["content_sha256"])


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        print(f"qkv: {message}", file=sys.stderr)


def _sample_pieces(source: Source, limit: int, read_bytes: int) -> Iterator[str]:
    """Text pieces from the start of the corpus, about ``limit`` characters in all, in slices
    of :data:`SAMPLE_PIECE_CHARS` (the trainer's memory per sequence grows with its length;
    reads already cut the text anywhere, so slices change the word counts by a few words)."""
    seen = 0
    for document in source.documents(read_bytes=read_bytes):
        for piece in document:
            for start in range(0, len(piece), SAMPLE_PIECE_CHARS):
                yield piece[start : start + SAMPLE_PIECE_CHARS]
            seen += len(piece)
            if seen >= limit:
                return


def train_tokenizer(source: Source, options: PrepareOptions, *, quiet: bool = True) -> Tokenizer:
    """A tokenizer of ``options.tokenizer`` kind for ``source``, with the end-of-text token
    appended (last id) unless masked-LM. Char: the characters of one full pass; BPE: trained
    on the first ``bpe_sample_mb`` MB (the trainer's counts grow with distinct words only)."""
    if options.tokenizer == "char":
        seen = np.zeros(0x110000, dtype=bool)
        for document in source.documents(read_bytes=options.read_bytes):
            for piece in document:
                seen[np.frombuffer(piece.encode("utf-32-le"), dtype=np.uint32)] = True
        chars = "".join(chr(code) for code in np.flatnonzero(seen))
        if not chars:
            raise ValueError(_empty_message(source))
        tokenizer = Tokenizer.train_char(chars, masked_lm=options.masked_lm)
    else:
        _say(f"training a {options.vocab_size}-token BPE on up to {options.bpe_sample_mb} MB of "
             f"{source.spec.data}", quiet)  # fmt: skip
        limit = options.bpe_sample_mb * 1_000_000
        tokenizer = Tokenizer.train_bpe(
            _sample_pieces(source, limit, options.read_bytes),
            vocab_size=options.vocab_size,
            masked_lm=options.masked_lm,
        )
    if not options.masked_lm:
        tokenizer.backend.add_special_tokens([EOT])
        tokenizer = Tokenizer.wrap(tokenizer.backend)
    return tokenizer


def _empty_message(source: Source) -> str:
    skipped = f" ({len(source.skipped)} bad files skipped)" if source.skipped else ""
    return (
        f"corpus {source.spec.data} is empty{skipped}: no text in it; pass a non-empty "
        "corpus with --data"
    )


def _safe_cut(text: str) -> int:
    """The last index where BPE tokens cannot straddle a cut (0 when there is none)."""
    index = len(text) - 1
    while index > 0:
        if text[index].isspace() and not text[index - 1].isspace():
            return index
        index -= 1
    return 0


class _Encoder:
    """Ids of text chunks: a vectorised table for the character tokenizer, the batch encoder
    (on a helper thread, so reading continues) for BPE."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.char = tokenizer_kind(tokenizer) == "char"
        self.eot = tokenizer.token_to_id(EOT)
        if self.char:
            vocab = tokenizer.get_vocab()
            self.table = np.full(0x110000, vocab.get(UNK, 0), dtype=np.uint32)
            for token, index in vocab.items():
                if len(token) == 1:
                    self.table[ord(token)] = index
        self.pool = ThreadPoolExecutor(max_workers=1)

    def submit(self, chunks: list[str], eot_after: list[bool]) -> Future[np.ndarray]:
        return self.pool.submit(self._encode, chunks, eot_after)

    def _encode(self, chunks: list[str], eot_after: list[bool]) -> np.ndarray:
        if self.char:
            rows = [self.table[np.frombuffer(c.encode("utf-32-le"), dtype=np.uint32)]
                    for c in chunks]  # fmt: skip
        else:
            encodings = self.tokenizer.backend.encode_batch_fast(chunks, add_special_tokens=False)
            rows = [np.asarray(e.ids, dtype=np.uint32) for e in encodings]
        eot = np.array([self.eot if self.eot is not None else 0], dtype=np.uint32)
        parts: list[np.ndarray] = []
        for row, end in zip(rows, eot_after, strict=True):
            parts.append(row)
            if end and self.eot is not None:
                parts.append(eot)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint32)


def _sizes(options: PrepareOptions, char: bool) -> tuple[int, int]:
    """(chunk, batch) characters for the tokenizer kind, unless ``options`` sets them."""
    chunk = options.chunk_chars or (CHUNK_CHARS if char else BPE_CHUNK_CHARS)
    return chunk, options.batch_chars or (BATCH_CHARS if char else BPE_BATCH_CHARS)


def _chunks(source: Source, encoder: _Encoder, options: PrepareOptions,
            digest: Any, progress: Any) -> Iterator[tuple[str, bool]]:  # fmt: skip
    """(chunk, ends a document) pairs of the whole corpus; updates the content hash (old rule:
    folder documents joined by newlines) and the progress bar in bytes."""
    newline_join = encoder.eot is None and source.joins_with_newline
    chunk_chars = _sizes(options, encoder.char)[0]
    for document in source.documents(read_bytes=options.read_bytes):
        carry, last = "", ""
        for piece in document:
            data = piece.encode("utf-8")
            digest.update(data)
            progress.update(len(data))
            last = piece[-1] if piece else last
            carry += piece
            while len(carry) >= chunk_chars:
                cut = len(carry) if encoder.char else _safe_cut(carry)
                if cut == 0 and len(carry) < MAX_CARRY:
                    break
                cut = cut or len(carry)
                yield carry[:cut], False
                carry = carry[cut:]
        if source.joins_with_newline and last != "\n":
            digest.update(b"\n")
            if newline_join:
                carry += "\n"
        yield carry, True


def _encode_all(source: Source, tokenizer: Tokenizer, options: PrepareOptions,
                writer: ShardWriter, *, quiet: bool) -> tuple[str, int]:  # fmt: skip
    """Stream every document through the encoder into ``writer``; returns (content sha256,
    documents)."""
    from tqdm import tqdm

    encoder = _Encoder(tokenizer)
    batch_chars = _sizes(options, encoder.char)[1]
    digest = hashlib.sha256()
    documents = 0
    progress = tqdm(
        total=source.total_bytes or None,
        unit="B",
        unit_scale=True,
        desc="qkv: tokenizing",
        disable=quiet,
        file=sys.stderr,
        smoothing=0.1,
    )
    pending: Future[np.ndarray] | None = None
    pending_count = 0  # chunks in the pending batch
    chunks: list[str] = []
    ends: list[bool] = []
    size = 0
    done = skip = writer.resumed_chunks  # chunks in the shards (a resumed run's come first)

    def flush() -> None:
        nonlocal pending, pending_count, chunks, ends, size, done
        if pending is not None:
            writer.write(pending.result())
            done += pending_count
            writer.checkpoint(done)
            rate = writer.total / max(progress.format_dict["elapsed"], 1e-9)
            progress.set_postfix_str(f"{writer.total / 1e6:.1f} M tokens, {rate / 1e6:.2f} M tok/s")
        pending = encoder.submit(chunks, ends) if chunks else None
        pending_count = len(chunks)
        chunks, ends, size = [], [], 0

    try:
        for index, (chunk, end) in enumerate(_chunks(source, encoder, options, digest, progress)):
            documents += end
            if index < skip:  # in the shards already: read again for the content hash only
                continue
            chunks.append(chunk)
            ends.append(end)
            size += len(chunk)
            if size >= batch_chars:
                flush()
        flush()
        flush()
    finally:
        encoder.pool.shutdown(wait=True)
        progress.close()
    return digest.hexdigest(), documents


def tokenizer_cache_path(source: Source, options: PrepareOptions, root: Path) -> Path:
    sample = options.bpe_sample_mb if options.tokenizer == "bpe" else None
    key = _key(LAYOUT, source.fingerprint, options.tokenizer, options.vocab_size,
               options.masked_lm, sample)  # fmt: skip
    return root / "tokenizers" / f"stream-{key}.json"


def prepare_corpus(
    spec: SourceSpec,
    options: PrepareOptions,
    *,
    tokenizer: Tokenizer | None = None,
    quiet: bool = False,
    root: Path | None = None,
) -> PreparedCorpus:
    """Tokenize ``spec``'s corpus into cached shards (or find them cached) and open them.

    With ``tokenizer`` given (a resumed run's) it is used as is; otherwise one is trained and
    cached beside the shards. Raises ValueError for an empty corpus and for bad input (see
    :mod:`qkv.data.sources`). Example::

        >>> done = prepare_corpus(SourceSpec(data="books/"), PrepareOptions(tokenizer="bpe"))
        >>> len(done.tokens), done.tokens[:8]
    """
    root = root or cache_dir()
    source = open_source(spec)
    if tokenizer is None:
        tokenizer = _load_or_train(source, options, root, quiet)
    key = _key(LAYOUT, source.fingerprint, tokenizer.sha256)
    folder = root / "prepared" / key
    manifest = read_manifest(folder)
    hit = manifest is not None
    if manifest is None:
        _say(f"preparing {spec.data} ({describe(source)}) into {folder}", quiet)
        dtype = token_dtype(tokenizer.get_vocab_size())
        resume = _key(options.read_bytes, _sizes(options, tokenizer_kind(tokenizer) == "char"))
        with ShardWriter(folder, dtype=dtype, shard_tokens=options.shard_tokens,
                         resume_key=resume) as writer:  # fmt: skip
            if writer.resumed_chunks:
                _say(f"resuming an interrupted preparation after {writer.total:,} tokens", quiet)
            sha, documents = _encode_all(source, tokenizer, options, writer, quiet=quiet)
            if writer.total == 0 or (documents and writer.total == documents
                                     and tokenizer.token_to_id(EOT) is not None):  # fmt: skip
                raise ValueError(_empty_message(source))
            if source.skipped:
                _say(f"skipped {len(source.skipped)} bad files (--skip-bad-files), first: "
                     f"{source.skipped[0]}", quiet)  # fmt: skip
            manifest_data = {
                "source": spec.data,
                "fingerprint": source.fingerprint,
                "tokenizer_sha256": tokenizer.sha256,
                "content_sha256": sha,
                "documents": documents,
                "skipped_files": list(source.skipped),
            }
            writer.commit(manifest_data)
        manifest = read_manifest(folder)
        if manifest is None:  # pragma: no cover - the folder was just written
            raise ValueError(f"the prepared corpus in {folder} could not be read back")
    return PreparedCorpus(
        tokenizer=tokenizer,
        tokens=ShardedTokens.open(folder, manifest),
        manifest=manifest,
        folder=folder,
        source=source,
        cache_hit=hit,
        skipped=list(manifest.get("skipped_files", [])),
    )


def _load_or_train(source: Source, options: PrepareOptions, root: Path,
                   quiet: bool) -> Tokenizer:  # fmt: skip
    path = tokenizer_cache_path(source, options, root)
    if path.is_file():
        return Tokenizer.from_file(path)
    tokenizer = train_tokenizer(source, options, quiet=quiet)
    write_text_atomic(path, tokenizer.to_str())
    return tokenizer
