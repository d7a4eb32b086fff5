"""Preparing a run: the BPE tokenizer is trained once per corpus and vocabulary size, then read
back from the cache as the same tokenizer."""

from pathlib import Path

import pytest
from train_helpers import TINY

from qkv.data import prepare_stream
from qkv.training import prepare
from qkv.training.config import TrainConfig


def test_bpe_tokenizer_is_cached_by_corpus_and_vocab(
    corpus_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = TrainConfig(
        **{**TINY, "data": str(corpus_file), "tokenizer": "bpe", "vocab_size": 300}
    )
    first = prepare.prepare_data(config, quiet=True)
    monkeypatch.setattr(prepare_stream, "train_tokenizer", lambda *a, **k: pytest.fail("retrained"))
    again = prepare.prepare_data(config, quiet=True)
    assert again.tokenizer.to_str() == first.tokenizer.to_str()
    assert again.train.tolist() == first.train.tolist()
    other = TrainConfig(**{**config.to_dict(), "vocab_size": 280})
    with pytest.raises(pytest.fail.Exception, match="retrained"):
        prepare.prepare_data(other, quiet=True)  # another vocabulary is another tokenizer
