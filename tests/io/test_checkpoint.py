"""qkv.save -> qkv.load round trips (the reloaded model is the oracle of the saved one) and the
atomicity of writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import qkv
from qkv.io import files
from qkv.models import GPT, Bert, BertForMaskedLM, preset


def _models() -> dict[str, nn.Module]:
    return {
        "gpt": GPT(preset("gpt-nano", vocab_size=64)),
        "llama": GPT(preset("llama-nano", vocab_size=64)),
        "llama-tied-gqa": GPT(preset("llama-nano", vocab_size=64, tie_embeddings=True)),
        "bert": Bert(preset("bert-tiny", vocab_size=64)),
        "bert-mlm": BertForMaskedLM(preset("bert-tiny", vocab_size=64)),
    }


@pytest.mark.parametrize("name", list(_models()))
@pytest.mark.parametrize("format", ["qkv", "hf"])
def test_save_load_identical(name: str, format: str, tmp_path: Path) -> None:
    model = _models()[name].eval()
    with torch.no_grad():
        for parameter in model.parameters():  # away from the init, LayerNorms included
            parameter.add_(torch.randn_like(parameter) * 0.1)
    qkv.save(model, tmp_path, format=format)
    loaded = qkv.load(tmp_path)
    assert type(loaded) is type(model)
    assert loaded.config == model.config or format == "hf"
    ids = torch.randint(0, 64, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), model(ids), atol=1e-6, rtol=0)
    if format == "qkv":
        for (n1, p1), (n2, p2) in zip(loaded.state_dict().items(), model.state_dict().items()):
            assert n1 == n2 and torch.equal(p1, p2)
        # Tying survives: one tensor stored, aliases recorded.
        saved = json.loads((tmp_path / "config.json").read_text())
        assert saved["format"] == "qkv" and saved["model"] == type(model).__name__
        tied = {a for group in _tied(model) for a in group[1:]}
        assert set(saved["tied"]) == tied
        assert {a for group in _tied(loaded) for a in group[1:]} == tied


def _tied(model: nn.Module) -> list[list[str]]:
    from qkv.io.state import alias_groups

    return alias_groups(model)


def test_hf_config_round_trips_the_qkv_config(tmp_path: Path) -> None:
    for name in ("gpt", "llama", "bert", "bert-mlm"):
        model = _models()[name]
        qkv.save(model, tmp_path / name, format="hf")
        config = qkv.load(tmp_path / name).config
        keep = {"dropout", "attention_dropout"}  # HF stores these; everything else must match
        assert {k: v for k, v in config.to_dict().items() if k not in keep} == {
            k: v for k, v in model.config.to_dict().items() if k not in keep
        }


def test_bare_config_dict_and_dtype_are_read(tmp_path: Path) -> None:
    model = GPT(preset("gpt-nano", vocab_size=64)).to(torch.bfloat16)
    qkv.save(model, tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["dtype"] == "bfloat16"
    (tmp_path / "config.json").write_text(json.dumps(model.config.to_dict()))  # bare config
    loaded = qkv.load(tmp_path)
    assert loaded.lm_head.weight.dtype == torch.bfloat16
    assert loaded.lm_head.weight is loaded.transformer["wte"].weight
    assert qkv.load(tmp_path, dtype=torch.float32).lm_head.weight.dtype == torch.float32


def test_loaded_model_trains_with_tied_gradients(tmp_path: Path) -> None:
    qkv.save(GPT(preset("gpt-nano", vocab_size=64)), tmp_path)
    model = qkv.load(tmp_path).train()
    ids = torch.randint(0, 64, (2, 8))
    loss = qkv.models.language_model_loss(model(ids), ids)
    loss.backward()
    assert model.transformer["wte"].weight.grad is not None
    assert all(p.requires_grad for p in model.parameters())


def test_save_with_tokenizer(tmp_path: Path) -> None:
    from tokenizers import Tokenizer as Backend
    from tokenizers import models, pre_tokenizers

    backend = Backend(models.WordLevel({c: i for i, c in enumerate("abc<")}, unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer = qkv.io.Tokenizer(backend)
    qkv.save(GPT(preset("gpt-nano", vocab_size=64)), tmp_path, tokenizer=tokenizer)
    assert qkv.load_tokenizer(tmp_path).encode("cab") == [2, 0, 1]


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = GPT(preset("gpt-nano", vocab_size=64))
    qkv.save(model, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", crash)
    other = GPT(preset("gpt-nano", vocab_size=64))
    with pytest.raises(OSError, match="disk full"):
        qkv.save(other, tmp_path)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before  # old weights and config intact, no temp file left behind


def test_atomic_path_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), files.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
    files.write_json_atomic(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
