"""Corpus tokenizers: exact round trips, tokenizer.json that qkv.load_tokenizer opens, and the
fast corpus encoder equal to the backend's own encode of the whole text (the oracle)."""

from pathlib import Path

import numpy as np
import pytest

import qkv
from qkv.data.tokenizers import MASK, UNK, build_tokenizer, encode_text, tokenizer_kind

TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "  All:\tSpeak, speak!  Ünïcödé — 東京 🙂\r\nend\n\n\n  indented\n"
) * 20


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_round_trip_is_exact(kind: str) -> None:
    tokenizer = build_tokenizer(kind, TEXT, vocab_size=300)
    assert tokenizer_kind(tokenizer) == kind
    for text in (TEXT, "  speak\n\n\tend 🙂", "\n", " "):
        assert tokenizer.decode(tokenizer.encode(text)) == text


def test_char_vocab_is_the_sorted_characters_then_specials() -> None:
    tokenizer = build_tokenizer("char", "abca\n", masked_lm=True)
    vocab = tokenizer.get_vocab()
    assert [vocab[c] for c in "\nabc"] == [0, 1, 2, 3]
    assert vocab[UNK] == 4 and vocab[MASK] == 6
    assert tokenizer.encode("abz") == [1, 2, 4]  # unseen character -> [UNK]


def test_bpe_vocab_size_is_respected_and_too_small_is_refused() -> None:
    assert build_tokenizer("bpe", TEXT, vocab_size=300).get_vocab_size() == 300
    with pytest.raises(ValueError, match="vocab_size=100 is too small"):
        build_tokenizer("bpe", TEXT, vocab_size=100)


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_saved_tokenizer_opens_with_qkv_load_tokenizer(kind: str, tmp_path: Path) -> None:
    tokenizer = build_tokenizer(kind, TEXT, vocab_size=300)
    (tmp_path / "tokenizer.json").write_text(tokenizer.to_str(), encoding="utf-8")
    loaded = qkv.load_tokenizer(tmp_path)
    ids = loaded.encode(TEXT, add_special_tokens=False)
    assert ids == tokenizer.encode(TEXT)
    assert loaded.decode(ids) == TEXT


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_encode_text_equals_whole_text_encode(kind: str) -> None:
    # Long enough that BPE encoding is cut into several chunks.
    text = TEXT * 40
    tokenizer = build_tokenizer(kind, TEXT, vocab_size=320)
    fast = encode_text(tokenizer, text)
    assert fast.dtype == np.int64
    assert fast.tolist() == tokenizer.backend.encode(text).ids
    assert encode_text(tokenizer.backend, text).tolist() == fast.tolist()  # a raw one too


def test_char_encode_text_maps_unknown_characters_to_unk() -> None:
    tokenizer = build_tokenizer("char", "ab")
    assert encode_text(tokenizer, "abx").tolist() == tokenizer.backend.encode("abx").ids


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown tokenizer 'word'"):
        build_tokenizer("word", TEXT)
