"""``qkv prepare`` from the command line: shards that ``qkv train`` then finds in the cache,
and bad input as one line ``qkv: error: ...`` with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qkv.cli.main import main
from qkv.data import prepare_stream

TINY = [
    "--model", "gpt-nano", "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
    "--block-size", "16", "--batch-size", "8", "--eval-iters", "2", "--no-plot", "--quiet",
    "--max-iters", "2", "--eval-interval", "2",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QKV_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _jsonl(path: Path) -> Path:
    rows = [{"story": f"story {i}: the {'red ' * (i % 4)}fox ran {i % 9} miles."}
            for i in range(400)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_prepare_then_train_finds_the_shards(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _jsonl(tmp_path / "stories.jsonl")
    flags = ["--data", str(data), "--text-field", "story", "--tokenizer", "bpe",
             "--vocab-size", "300"]  # fmt: skip
    assert main(["prepare", "--quiet", *flags]) == 0
    first = capsys.readouterr().out
    assert first.startswith("prepared:") and "of 400 documents" in first
    assert main(["prepare", "--quiet", *flags]) == 0
    assert capsys.readouterr().out.startswith("found in the cache:")
    monkeypatch.setattr(prepare_stream.ShardWriter, "write", lambda *a: pytest.fail("re-encoded"))
    monkeypatch.setattr(prepare_stream, "train_tokenizer", lambda *a, **k: pytest.fail("trained"))
    assert main(["train", *TINY, *flags, "--out-dir", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "metrics.jsonl").is_file()


def test_bad_input_is_one_line_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "a.txt").write_text("fine text\n" * 50, encoding="utf-8")
    (folder / "b.txt").write_bytes(b"caf\xe9\n")
    cases = [
        (["--data", str(folder)], "b.txt is not valid UTF-8 at byte 3"),
        (["--data", str(_jsonl(tmp_path / "s.jsonl"))], "line 1 lacks the field 'text'"),
        (["--data", "hf:nobody/nothing"], "not in the datasets cache"),
        (["--data", str(tmp_path / "missing")], "does not exist"),
    ]
    for args, expected in cases:
        assert main(["prepare", "--quiet", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("qkv: error: ") and expected in err, err
        assert err.count("\n") == 1
    assert main(["prepare", "--quiet", "--skip-bad-files", "--data", str(folder)]) == 0
    assert "1 bad files skipped" in capsys.readouterr().out
