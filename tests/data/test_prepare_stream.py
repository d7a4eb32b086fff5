"""Streaming preparation against one-shot encoding: the shards hold exactly the ids of
encoding every document whole (then its end-of-text token), whatever the read, chunk, batch
and shard sizes; a killed preparation leaves nothing that loads; a changed file invalidates."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from qkv.data.prepare_stream import EOT, PrepareOptions, prepare_corpus
from qkv.data.shards import read_manifest
from qkv.data.sources import SourceSpec

# Multi-byte characters (2, 3 and 4 bytes), runs of spaces and newlines, words of all lengths.
TRICKY = (
    "Der Bär äß naïve Crème — 日本語のテキスト 🙂🙂 and  double  spaces\n\n"
    "\tTabs\tand trailing   \nwords, punctuation!? 12345 6789 'quotes' \"here\"\n"
)


def _corpus(folder: Path, n: int = 40) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    texts = []
    for i in range(3):
        text = "".join(f"{i}:{k} {TRICKY[k % 17 :]}" for k in range(n))
        (folder / f"doc{i}.txt").write_text(text, encoding="utf-8")
        texts.append(text)
    (folder / "notes.md").write_text("# Title\n\nmarkdown *body* ünïcödé\n", encoding="utf-8")
    return [(folder / name).read_text(encoding="utf-8") for name in
            ("doc0.txt", "doc1.txt", "doc2.txt", "notes.md")]  # fmt: skip


def _one_shot(tokenizer, documents: list[str]) -> list[int]:
    eot = tokenizer.token_to_id(EOT)
    ids: list[int] = []
    for document in documents:
        ids += tokenizer.encode(document) + [eot]
    return ids


# Reads of 1, 5 and 7 bytes split 2-, 3- and 4-byte characters; 11-character chunks cut words.
SIZES = [
    dict(read_bytes=1, chunk_chars=11, batch_chars=40, shard_tokens=97),
    dict(read_bytes=7, chunk_chars=3, batch_chars=1, shard_tokens=1000),
    dict(read_bytes=5, chunk_chars=64, batch_chars=1 << 20, shard_tokens=1 << 20),
]


@pytest.mark.parametrize("kind", ["char", "bpe"])
@pytest.mark.parametrize("sizes", SIZES)
def test_shards_equal_one_shot_encoding(tmp_path: Path, kind: str, sizes: dict) -> None:
    documents = _corpus(tmp_path / "corpus")
    options = PrepareOptions(tokenizer=kind, vocab_size=320, **sizes)
    done = prepare_corpus(
        SourceSpec(data=str(tmp_path / "corpus")), options, root=tmp_path / "c", quiet=True
    )
    assert done.tokens.tolist() == _one_shot(done.tokenizer, documents)
    assert done.manifest["documents"] == 4
    assert done.manifest["tokens"] == len(done.tokens)
    assert sum(s["tokens"] for s in done.manifest["shards"]) == len(done.tokens)
    # The same corpus with other sizes: the same tokenizer and the same ids.
    whole = prepare_corpus(
        SourceSpec(data=str(tmp_path / "corpus")),
        PrepareOptions(tokenizer=kind, vocab_size=320),
        tokenizer=done.tokenizer,
        root=tmp_path / "other",
        quiet=True,
    )
    assert np.array_equal(whole.tokens[:], done.tokens[:])


def test_windows_across_shards_and_views(tmp_path: Path) -> None:
    documents = _corpus(tmp_path / "corpus")
    done = prepare_corpus(
        SourceSpec(data=str(tmp_path / "corpus")),
        PrepareOptions(shard_tokens=50),
        root=tmp_path / "c",
        quiet=True,
    )
    flat = np.asarray(_one_shot(done.tokenizer, documents))
    assert len(done.manifest["shards"]) > 10
    for start, stop in [(0, 1), (45, 155), (49, 50), (50, 51), (3, len(flat)), (7, 7)]:
        assert np.array_equal(done.tokens[start:stop], flat[start:stop])
    view = done.tokens.view(120, 400)
    assert len(view) == 280
    assert np.array_equal(view[30:90], flat[150:210])


def test_cache_hit_is_a_stat_and_a_changed_file_invalidates(tmp_path: Path) -> None:
    _corpus(tmp_path / "corpus")
    spec = SourceSpec(data=str(tmp_path / "corpus"))
    first = prepare_corpus(spec, PrepareOptions(tokenizer="bpe", vocab_size=300),
                           root=tmp_path / "c", quiet=True)  # fmt: skip
    again = prepare_corpus(spec, PrepareOptions(tokenizer="bpe", vocab_size=300),
                           root=tmp_path / "c", quiet=True)  # fmt: skip
    assert not first.cache_hit and again.cache_hit
    assert again.tokenizer.to_str() == first.tokenizer.to_str()
    changed = tmp_path / "corpus" / "doc1.txt"
    changed.write_text("completely new words in this document\n", encoding="utf-8")
    os.utime(changed, ns=(1, 1))  # even with an old modification time: the size changed
    third = prepare_corpus(spec, PrepareOptions(tokenizer="bpe", vocab_size=300),
                           root=tmp_path / "c", quiet=True)  # fmt: skip
    assert not third.cache_hit and third.folder != first.folder
    texts = [(tmp_path / "corpus" / n).read_text(encoding="utf-8")
             for n in ("doc0.txt", "doc1.txt", "doc2.txt", "notes.md")]  # fmt: skip
    assert third.tokens.tolist() == _one_shot(third.tokenizer, texts)


def test_killed_mid_shard_leaves_no_entry_that_loads(tmp_path: Path) -> None:
    _corpus(tmp_path / "corpus", n=400)
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from qkv.data import shards
        from qkv.data.prepare_stream import PrepareOptions, prepare_corpus
        from qkv.data.sources import SourceSpec
        write = shards.ShardWriter.write
        def dying_write(self, ids):
            write(self, ids)
            if self.total > 3000:  # several shards written, one half full
                os.kill(os.getpid(), signal.SIGKILL)
        shards.ShardWriter.write = dying_write
        prepare_corpus(SourceSpec(data={str(tmp_path / "corpus")!r}),
                       PrepareOptions(shard_tokens=1000, batch_chars=500),
                       root=Path({str(tmp_path / "c")!r}), quiet=True)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    prepared = tmp_path / "c" / "prepared"
    leftovers = list(prepared.iterdir())
    assert leftovers and all(p.name.endswith(".tmp") for p in leftovers)  # only a temporary
    assert all(read_manifest(p) is None for p in leftovers)
    spec = SourceSpec(data=str(tmp_path / "corpus"))
    done = prepare_corpus(spec, PrepareOptions(shard_tokens=1000), root=tmp_path / "c", quiet=True)
    assert not done.cache_hit
    assert [p.name for p in prepared.iterdir()] == [done.folder.name]  # the stale one is gone
    texts = [(tmp_path / "corpus" / n).read_text(encoding="utf-8")
             for n in ("doc0.txt", "doc1.txt", "doc2.txt", "notes.md")]  # fmt: skip
    assert done.tokens.tolist() == _one_shot(done.tokenizer, texts)


def test_damaged_shard_is_not_loaded(tmp_path: Path) -> None:
    _corpus(tmp_path / "corpus")
    spec = SourceSpec(data=str(tmp_path / "corpus"))
    first = prepare_corpus(spec, PrepareOptions(), root=tmp_path / "c", quiet=True)
    expected = first.tokens.tolist()
    shard = first.folder / first.manifest["shards"][0]["file"]
    shard.write_bytes(shard.read_bytes()[:-2])  # truncated by a full disk, say
    assert read_manifest(first.folder) is None
    again = prepare_corpus(spec, PrepareOptions(), root=tmp_path / "c", quiet=True)
    assert not again.cache_hit and again.tokens.tolist() == expected


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_killed_preparation_resumes_after_its_last_recorded_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    _corpus(tmp_path / "corpus", n=400)
    sizes = (
        f"tokenizer={kind!r}, vocab_size=320, shard_tokens=1000, batch_chars=500, "
        "chunk_chars=100, read_bytes=64"
    )
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from qkv.data import shards
        from qkv.data.prepare_stream import PrepareOptions, prepare_corpus
        from qkv.data.sources import SourceSpec
        write = shards.ShardWriter.write
        def dying_write(self, ids):
            write(self, ids)
            if self.total > 5500:  # mid-shard, before this batch is recorded
                os.kill(os.getpid(), signal.SIGKILL)
        shards.ShardWriter.write = dying_write
        prepare_corpus(SourceSpec(data={str(tmp_path / "corpus")!r}), PrepareOptions({sizes}),
                       root=Path({str(tmp_path / "c")!r}), quiet=True)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    from qkv.data import shards

    written: list[int] = []
    write = shards.ShardWriter.write

    def counting_write(self: shards.ShardWriter, ids: np.ndarray) -> None:
        written.append(len(ids))
        write(self, ids)

    monkeypatch.setattr(shards.ShardWriter, "write", counting_write)
    spec = SourceSpec(data=str(tmp_path / "corpus"))
    options = PrepareOptions(tokenizer=kind, vocab_size=320, shard_tokens=1000, batch_chars=500,
                             chunk_chars=100, read_bytes=64)  # fmt: skip
    done = prepare_corpus(spec, options, root=tmp_path / "c", quiet=True)
    texts = [(tmp_path / "corpus" / n).read_text(encoding="utf-8")
             for n in ("doc0.txt", "doc1.txt", "doc2.txt", "notes.md")]  # fmt: skip
    assert done.tokens.tolist() == _one_shot(done.tokenizer, texts)  # exact, across the cut
    assert 0 < sum(written) <= len(done.tokens) - 5000  # resumed: the recorded part not redone
    prepared = tmp_path / "c" / "prepared"
    assert [p.name for p in prepared.iterdir()] == [done.folder.name]
    assert read_manifest(done.folder)["documents"] == 4
