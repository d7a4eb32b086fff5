"""``qkv eval --data`` reads what ``qkv train`` reads (a folder, JSONL, Parquet, a saved
``datasets`` folder) through the streaming shards: every form of the same documents gives the
loss of an independent window-by-window computation over each document's ids and its
end-of-text token, and a second evaluation encodes nothing (it reads the cached shards)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import qkv
from qkv.cli.main import main
from qkv.data import prepare_stream
from qkv.data.prepare_stream import EOT
from qkv.data.tokenizer import Tokenizer

DOCUMENTS = [
    "Ünïcödé lines 🙂 of text, said the fox.\n" * 9,
    "a second document, without a final newline",
    "and a third: the fox ran twelve miles " * 7,
]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QKV_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    tokenizer = Tokenizer.train_char("".join(DOCUMENTS))
    tokenizer.backend.add_special_tokens([EOT])  # as qkv train's tokenizers have
    torch.manual_seed(0)
    config = qkv.models.preset("gpt-nano", vocab_size=tokenizer.get_vocab_size(),
                               n_positions=32, n_layer=1)  # fmt: skip
    path = tmp_path / "ckpt"
    qkv.save(qkv.models.GPT(config), path)
    (path / "tokenizer.json").write_text(tokenizer.to_str(), encoding="utf-8")
    return path


def _forms(tmp_path: Path) -> dict[str, list[str]]:
    """The same documents as a folder, JSONL, Parquet and a saved datasets folder."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "books"
    folder.mkdir()
    for i, text in enumerate(DOCUMENTS):
        (folder / f"{i}.{'md' if i == 2 else 'txt'}").write_text(text, encoding="utf-8")
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("".join(json.dumps({"body": t}) + "\n" for t in DOCUMENTS), encoding="utf-8")
    parquet = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"body": DOCUMENTS}), parquet)
    saved = tmp_path / "saved"
    datasets.DatasetDict({"test": datasets.Dataset.from_dict({"body": DOCUMENTS})}).save_to_disk(
        str(saved)
    )
    return {
        "folder": ["--data", str(folder)],
        "jsonl": ["--data", str(jsonl), "--text-field", "body"],
        "parquet": ["--data", str(parquet), "--text-field", "body"],
        "datasets": ["--data", str(saved), "--text-field", "body", "--data-split", "test"],
    }


def _oracle(directory: Path, split: str) -> tuple[float, int, int]:
    """(nats, tokens predicted, characters predicted) one window at a time."""
    model, tokenizer = qkv.load(directory), qkv.load_tokenizer(directory)
    eot = tokenizer.token_to_id(EOT)
    ids: list[int] = []
    for text in DOCUMENTS:  # a folder's files do not gain a newline: end-of-text separates them
        ids += tokenizer.encode(text, add_special_tokens=False) + [eot]
    cut = int(len(ids) * 0.9)
    ids = {"all": ids, "val": ids[cut:]}[split]
    nats = 0.0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, 32):
            window = torch.tensor([ids[start : start + 33]])
            logits = model(window[:, :-1])
            nats += float(F.cross_entropy(logits[0], window[0, 1:], reduction="sum"))
    characters = sum(1 for i in ids[1:] if i != eot)
    return nats, len(ids) - 1, characters


def _parse(out: str) -> dict[str, str]:
    return {line.split()[0]: line.split(maxsplit=1)[1] for line in out.splitlines()}


@pytest.mark.parametrize("split", ["all", "val"])
def test_every_source_form_gives_the_oracle_loss(checkpoint: Path, tmp_path: Path, capsys,
                                                 split: str) -> None:  # fmt: skip
    nats, predicted, characters = _oracle(checkpoint, split)
    for form, flags in _forms(tmp_path).items():
        argv = ["eval", str(checkpoint), *flags, "--split", split, "--batch-size", "3"]
        assert main(argv) == 0, form
        values = _parse(capsys.readouterr().out)
        assert f"{predicted:,} tokens predicted" in values["data"], form
        assert float(values["loss"].split()[0]) == pytest.approx(nats / predicted, abs=1e-4)
        bits = float(values["bits/character"])
        assert bits == pytest.approx(nats / characters / math.log(2), abs=1e-4), form


def test_a_second_eval_reads_the_cached_shards(
    checkpoint: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags = _forms(tmp_path)["jsonl"]
    assert main(["eval", str(checkpoint), *flags]) == 0
    first = capsys.readouterr().out
    assert list((tmp_path / "cache" / "prepared").iterdir())  # shards, not a string in memory
    monkeypatch.setattr(prepare_stream.ShardWriter, "write", lambda *a: pytest.fail("re-encoded"))
    assert main(["eval", str(checkpoint), *flags]) == 0
    assert capsys.readouterr().out == first


def test_bad_data_is_one_line(checkpoint: Path, tmp_path: Path, capsys) -> None:
    flags = _forms(tmp_path)
    capsys.readouterr()  # save_to_disk's progress bar
    cases = [
        (flags["jsonl"][:2], "line 1 lacks the field 'text'"),
        ([*flags["parquet"][:2], "--text-field", "nope"], "has no column 'nope'"),
        ([*flags["datasets"][:4], "--data-split", "dev"], "has no split 'dev'"),
    ]
    for args, expected in cases:
        assert main(["eval", str(checkpoint), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("qkv: error: ") and expected in err and err.count("\n") == 1, err
