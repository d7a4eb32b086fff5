"""``qkv generate --precision``: auto is fp32 where bf16 is emulated and bf16 where native
(oracle: the uncached greedy decode of the model in that dtype); an emulated bf16 request
proceeds with one warning line on stderr."""

from pathlib import Path

import pytest
import torch

import qkv
from qkv import hardware
from qkv.cli.main import main
from qkv.data.tokenizers import build_tokenizer

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 20


def _checkpoint(path: Path) -> Path:
    tokenizer = build_tokenizer("char", TEXT, vocab_size=300)
    torch.manual_seed(0)
    config = qkv.models.preset("gpt-nano", vocab_size=tokenizer.get_vocab_size(),
                               n_positions=32, n_layer=2)  # fmt: skip
    qkv.save(qkv.models.GPT(config), path)
    (path / "tokenizer.json").write_text(tokenizer.to_str(), encoding="utf-8")
    return path


def _greedy(directory: Path, prompt: str, n: int, dtype: torch.dtype) -> str:
    model, tokenizer = qkv.load(directory).to(dtype), qkv.load_tokenizer(directory)
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    start = len(ids)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    return prompt + tokenizer.decode(ids[start:]) + "\n"


def _report(monkeypatch: pytest.MonkeyPatch, isa: str, *flags: str) -> None:
    monkeypatch.setattr(hardware, "cpu_capability", lambda: isa)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)


def _generate(directory: Path, precision: str) -> int:
    return main(["generate", str(directory), "--prompt", "the lazy", "--max-new-tokens", "12",
                 "--temperature", "0", "--precision", precision])  # fmt: skip


@pytest.mark.parametrize(
    ("isa", "flags", "dtype"),
    [("AVX2", ("avx2",), torch.float32), ("AVX512", ("avx512_bf16",), torch.bfloat16)],
)
def test_auto_decodes_in_the_native_dtype(tmp_path, monkeypatch, capsys, isa, flags, dtype):
    directory = _checkpoint(tmp_path / "ckpt")
    _report(monkeypatch, isa, *flags)
    assert _generate(directory, "auto") == 0
    captured = capsys.readouterr()
    assert captured.out == _greedy(directory, "the lazy", 12, dtype)
    assert "warning" not in captured.err


def test_bf16_on_avx2_warns_once_and_decodes_in_bf16(tmp_path, monkeypatch, capsys) -> None:
    directory = _checkpoint(tmp_path / "ckpt")
    _report(monkeypatch, "AVX2", "avx2")
    assert _generate(directory, "bf16") == 0
    captured = capsys.readouterr()
    assert captured.out == _greedy(directory, "the lazy", 12, torch.bfloat16)
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "AVX2" in warnings[0] and "no native bf16" in warnings[0]
