"""The memory-mapped token cache: equal to direct encoding, keyed by text and tokenizer."""

from pathlib import Path

import numpy as np
import pytest

from qkv.data import token_cache
from qkv.data.tokenizers import build_tokenizer, encode_text


def test_cache_hit_reuses_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "to be or not to be\n" * 50
    tokenizer = build_tokenizer("char", text)
    first = token_cache.cached_tokens(text, "sha-a", tokenizer, root=tmp_path)
    assert isinstance(first, np.memmap) and first.dtype == np.uint16
    assert first.tolist() == encode_text(tokenizer, text).tolist()
    monkeypatch.setattr(token_cache, "encode_text", lambda *a: pytest.fail("re-encoded"))
    again = token_cache.cached_tokens(text, "sha-a", tokenizer, root=tmp_path)
    assert again.tolist() == first.tolist()
    assert len(list((tmp_path / "tokens").iterdir())) == 1


def test_key_depends_on_text_and_tokenizer(tmp_path: Path) -> None:
    text = "abcabc\n" * 10
    token_cache.cached_tokens(text, "sha-a", build_tokenizer("char", text), root=tmp_path)
    token_cache.cached_tokens(text, "sha-b", build_tokenizer("char", text), root=tmp_path)
    other = build_tokenizer("char", text + "z")
    token_cache.cached_tokens(text, "sha-a", other, root=tmp_path)
    assert len(list((tmp_path / "tokens").iterdir())) == 3


def test_dtype_and_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert token_cache.token_dtype(65536) == np.uint16
    assert token_cache.token_dtype(65537) == np.uint32
    monkeypatch.setenv("QKV_CACHE", str(tmp_path))
    assert token_cache.cache_dir() == tmp_path
