"""Reading corpora, and every way a corpus can be unusable."""

from pathlib import Path

import pytest

from qkv.data.corpus import read_corpus, split_point


def test_file_and_folder(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("second", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_text("third\n", encoding="utf-8")
    (tmp_path / "ignored.md").write_text("not text", encoding="utf-8")
    corpus = read_corpus(tmp_path)
    assert corpus.text == "first\nsecond\nthird\n"
    assert len(corpus.files) == 3
    single = read_corpus(tmp_path / "a.txt")
    assert single.text == "first\n"
    assert single.sha256 != corpus.sha256


def test_bom_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffhello".encode())
    assert read_corpus(path).text == "hello"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"  \n\n ", "is empty"),
        (b"abc\x00\x01\x02", "looks binary"),
        ("caf\u00e9".encode("latin-1"), "not valid UTF-8"),
    ],
)
def test_unusable_corpus(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_corpus(path)


def test_missing_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_corpus(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match="holds no .txt files"):
        read_corpus(tmp_path)


def test_split_point() -> None:
    assert split_point(1000, 0.1) == 900
    assert split_point(11, 0.1) == 9
