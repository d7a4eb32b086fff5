"""``qkv eval``: loss equals an independent per-window computation; bits per character and
per byte follow from the total nats and the text's own character / UTF-8 byte counts."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import qkv
from qkv.cli.main import main
from qkv.data.tokenizers import build_tokenizer

TEXT = "Ünïcödé lines 🙂 of text, said the fox.\n" * 30


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QKV_CACHE", str(tmp_path / "cache"))


def _checkpoint(path: Path, kind: str) -> Path:
    tokenizer = build_tokenizer(kind, TEXT, vocab_size=290)
    torch.manual_seed(0)
    config = qkv.models.preset("gpt-nano", vocab_size=tokenizer.get_vocab_size(),
                               n_positions=32, n_layer=1)  # fmt: skip
    qkv.save(qkv.models.GPT(config), path)
    (path / "tokenizer.json").write_text(tokenizer.to_str(), encoding="utf-8")
    return path


def _parse(out: str) -> dict[str, float]:
    values = {}
    for line in out.splitlines():
        key, _, rest = line.partition(" ")
        if key in ("loss", "perplexity") or key.startswith("bits/"):
            values[key] = float(rest.split()[0])
    return values


@pytest.mark.parametrize(("kind", "unit"), [("char", "bits/character"), ("bpe", "bits/byte")])
def test_eval_matches_oracle(kind: str, unit: str, tmp_path: Path, capsys) -> None:
    directory = _checkpoint(tmp_path / "ckpt", kind)
    corpus = tmp_path / "text.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    assert main(["eval", str(directory), "--data", str(corpus), "--batch-size", "3"]) == 0
    values = _parse(capsys.readouterr().out)

    model, tokenizer = qkv.load(directory), qkv.load_tokenizer(directory)
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    nats = 0.0
    with torch.no_grad():  # one window at a time, predicting ids[s+1 : s+33]
        for start in range(0, len(ids) - 1, 32):
            window = torch.tensor([ids[start : start + 33]])
            logits = model(window[:, :-1])
            nats += float(F.cross_entropy(logits[0], window[0, 1:], reduction="sum"))
    predicted = len(ids) - 1
    assert values["loss"] == pytest.approx(nats / predicted, abs=1e-4)
    assert values["perplexity"] == pytest.approx(math.exp(nats / predicted), rel=1e-3)
    if kind == "char":
        units = len(TEXT) - 1  # every character but the first is predicted
    else:  # UTF-8 bytes of the text less those of the first token (one byte per symbol)
        first_bytes = len(tokenizer.tokens(ids[:1])[0])
        units = len(TEXT.encode("utf-8")) - first_bytes
        from qkv.cli.eval import token_bytes

        sizes = token_bytes(tokenizer.backend)
        assert sum(sizes[i] for i in ids) == len(TEXT.encode("utf-8"))
    assert values[unit] == pytest.approx(nats / units / math.log(2), abs=1e-4)


def test_eval_errors(tmp_path: Path, capsys) -> None:
    directory = _checkpoint(tmp_path / "ckpt", "char")
    assert main(["eval", str(directory), "--data", str(tmp_path / "none.txt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--data", str(tmp_path / "none.txt")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
