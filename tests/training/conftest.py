"""Fixtures for training tests: a private cache, a tiny synthetic corpus, tiny model flags."""

from pathlib import Path

import pytest
from train_helpers import synthetic_text


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QKV_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(synthetic_text(), encoding="utf-8")
    return path
