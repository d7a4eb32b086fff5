"""``qkv generate``: streamed output equals the uncached oracle (greedy), within and past the
model's context; sampling is reproducible by seed; BPE pieces never split a character."""

from pathlib import Path

import pytest
import torch

import qkv
from qkv.cli.generate import stream_text, stream_tokens
from qkv.cli.main import main
from qkv.data.tokenizers import build_tokenizer

TEXT = "the quick brown fox jumps over the lazy dog. Ünïcödé 🙂\n" * 20


def _checkpoint(path: Path, kind: str = "char", context: int = 24) -> Path:
    tokenizer = build_tokenizer(kind, TEXT, vocab_size=300)
    torch.manual_seed(0)
    config = qkv.models.preset("gpt-nano", vocab_size=tokenizer.get_vocab_size(),
                               n_positions=context, n_layer=2)  # fmt: skip
    qkv.save(qkv.models.GPT(config), path)
    (path / "tokenizer.json").write_text(tokenizer.to_str(), encoding="utf-8")
    return path


def _greedy_oracle(model: torch.nn.Module, ids: list[int], n: int) -> list[int]:
    """No cache: each token from a full forward over the last n_positions tokens."""
    ids = list(ids)
    context = model.config.n_positions
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([ids[-context:]]))  # (1, T, V)
            ids.append(int(logits[0, -1].argmax()))
    return ids


@pytest.mark.parametrize("new_tokens", [10, 60])  # within, and well past, the 24-token context
def test_greedy_stream_matches_uncached_oracle(tmp_path: Path, new_tokens: int) -> None:
    directory = _checkpoint(tmp_path / "ckpt")
    model, tokenizer = qkv.load(directory), qkv.load_tokenizer(directory)
    prompt = tokenizer.encode("the quick", add_special_tokens=False)
    streamed = list(stream_tokens(model, prompt, max_new_tokens=new_tokens, temperature=0,
                                  top_k=None, top_p=None, seed=None))  # fmt: skip
    assert prompt + streamed == _greedy_oracle(model, prompt, new_tokens)


def test_cli_prints_prompt_then_continuation(tmp_path: Path, capsys) -> None:
    directory = _checkpoint(tmp_path / "ckpt")
    model, tokenizer = qkv.load(directory), qkv.load_tokenizer(directory)
    args = ["generate", str(directory), "--prompt", "the lazy", "--max-new-tokens", "40",
            "--temperature", "0"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    prompt = tokenizer.encode("the lazy", add_special_tokens=False)
    expected = tokenizer.decode(_greedy_oracle(model, prompt, 40)[len(prompt) :])
    assert out == "the lazy" + expected + "\n"


def test_seeded_sampling_is_reproducible(tmp_path: Path, capsys) -> None:
    directory = _checkpoint(tmp_path / "ckpt")
    args = ["generate", str(directory), "--prompt", "fox", "--max-new-tokens", "50",
            "--temperature", "1.0", "--top-k", "10", "--top-p", "0.9", "--seed", "7"]  # fmt: skip
    outputs = []
    for _ in range(2):
        assert main(args) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert main([*args[:-1], "8"]) == 0
    assert capsys.readouterr().out != outputs[0]


def test_bpe_pieces_are_whole_characters(tmp_path: Path) -> None:
    tokenizer = qkv.load_tokenizer(_checkpoint(tmp_path / "ckpt", kind="bpe"))
    ids = tokenizer.encode("🚀 Ünïcödé €🚀", add_special_tokens=False)  # unseen: bytes
    single_bytes = [i for i in ids if len(tokenizer.tokens([i])[0]) == 1]
    assert single_bytes  # the emoji are split over byte tokens
    pieces = list(stream_text(tokenizer, iter(ids)))
    assert "".join(pieces) == "🚀 Ünïcödé €🚀"
    assert not any("\ufffd" in piece for piece in pieces)
    assert len(pieces) > 1


def test_errors_are_one_line(tmp_path: Path, capsys) -> None:
    assert main(["generate", str(tmp_path / "missing"), "--prompt", "x"]) == 2
    assert "does not exist" in capsys.readouterr().err
    directory = _checkpoint(tmp_path / "ckpt")
    assert main(["generate", str(directory), "--temperature", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qkv: error: temperature") and len(err.strip().splitlines()) == 1
    bert = tmp_path / "bert"
    tokenizer = build_tokenizer("char", TEXT, masked_lm=True)
    qkv.save(qkv.models.BertForMaskedLM(qkv.models.preset(
        "bert-tiny", vocab_size=tokenizer.get_vocab_size())), bert)  # fmt: skip
    (bert / "tokenizer.json").write_text(tokenizer.to_str(), encoding="utf-8")
    assert main(["generate", str(bert), "--prompt", "x"]) == 2
    assert "needs a GPT" in capsys.readouterr().err
