"""Corpora as people keep them (JSONL, Parquet, a saved ``datasets`` folder, a folder of
.txt/.md) prepare to exactly the ids of encoding each record whole; bad input names the file
and the byte offset or line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qkv.data.prepare_stream import EOT, PrepareOptions, prepare_corpus
from qkv.data.shards import read_manifest
from qkv.data.sources import SourceSpec, open_source

RECORDS = [
    "The first story: a cat sat.\nIt was happy.",
    "Ünïcödé story two — 日本 🙂",
    "",
    "three  spaces and\ttabs\n\n",
]


def _one_shot(tokenizer, texts: list[str]) -> list[int]:
    eot = tokenizer.token_to_id(EOT)
    return [i for text in texts for i in [*tokenizer.encode(text), eot]]


def _prepare(tmp_path: Path, spec: SourceSpec, kind: str = "bpe"):
    options = PrepareOptions(tokenizer=kind, vocab_size=300)
    return prepare_corpus(spec, options, root=tmp_path / "cache", quiet=True)


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_jsonl_text_field(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "data.jsonl"
    lines = [json.dumps({"body": text, "id": i}) for i, text in enumerate(RECORDS)]
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    done = _prepare(tmp_path, SourceSpec(data=str(path), text_field="body"), kind)
    assert done.tokens.tolist() == _one_shot(done.tokenizer, RECORDS)
    assert done.manifest["documents"] == len(RECORDS)


def test_parquet_streamed_by_row_groups(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [f"{text} #{i}" for i in range(30) for text in RECORDS]
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"text": texts, "n": list(range(len(texts)))}), path,
                   row_group_size=7)  # fmt: skip
    done = _prepare(tmp_path, SourceSpec(data=str(path)))
    assert done.tokens.tolist() == _one_shot(done.tokenizer, texts)


def test_saved_datasets_folder_with_split(tmp_path: Path) -> None:
    import datasets

    splits = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": RECORDS * 3}),
            "validation": datasets.Dataset.from_dict({"text": RECORDS[:2]}),
        }
    )
    splits.save_to_disk(str(tmp_path / "saved"))
    done = _prepare(tmp_path, SourceSpec(data=str(tmp_path / "saved"), split="validation"))
    assert done.tokens.tolist() == _one_shot(done.tokenizer, RECORDS[:2])
    with pytest.raises(ValueError, match="no split 'test'.*--data-split.*train, validation"):
        open_source(SourceSpec(data=str(tmp_path / "saved"), split="test"))
    with pytest.raises(ValueError, match="no column 'body'.*--text-field.*text"):
        open_source(SourceSpec(data=str(tmp_path / "saved"), text_field="body"))
    empty = datasets.Dataset.from_dict({"text": ["x"]}).filter(lambda row: False)
    empty.save_to_disk(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="split 'train' is empty; pick another --data-split"):
        open_source(SourceSpec(data=str(tmp_path / "empty")))


def test_jsonl_bad_lines_are_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine"}\n{"text": broken\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl line 2 is not JSON"):
        _prepare(tmp_path, SourceSpec(data=str(path)))
    path.write_text('{"text": "fine"}\n\n{"content": "x"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 3 lacks the field 'text' \(it has: content\)"):
        _prepare(tmp_path, SourceSpec(data=str(path)))
    prepared = tmp_path / "cache" / "prepared"
    assert not prepared.exists() or not any(read_manifest(p) for p in prepared.iterdir())


def test_bad_file_in_folder_names_the_byte_and_can_be_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "a.txt").write_text("good text é\n", encoding="utf-8")
    (folder / "b.md").write_bytes("fine é then ".encode() + b"\xe9t\xe9\n")
    (folder / "c.txt").write_bytes(b"binary\x00\x01")
    (folder / "d.txt").write_text("last good one\n", encoding="utf-8")
    (folder / "ignored.csv").write_text("not,text\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"b.md is not valid UTF-8 at byte 13 .*--skip-bad-files"):
        _prepare(tmp_path, SourceSpec(data=str(folder)))
    done = _prepare(tmp_path, SourceSpec(data=str(folder), skip_bad_files=True), "char")
    assert len(done.skipped) == 2
    assert "b.md" in done.skipped[0] and "byte 13" in done.skipped[0]
    assert "c.txt" in done.skipped[1] and "binary" in done.skipped[1]
    texts = ["good text é\n", "last good one\n"]
    assert done.tokens.tolist() == _one_shot(done.tokenizer, texts)


def test_empty_corpus_says_so(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text('{"text": ""}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="is empty"):
        _prepare(tmp_path, SourceSpec(data=str(path)))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_source(SourceSpec(data=str(tmp_path / "nope.txt")))
