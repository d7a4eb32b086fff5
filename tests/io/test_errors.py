"""Every bad checkpoint gives an error naming the file, the tensor, what was expected and what
was found."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import qkv
from qkv.models import GPT, Bert, preset


def _saved(tmp_path: Path, format: str = "hf") -> Path:
    model = GPT(preset("gpt-nano", vocab_size=64))
    return qkv.save(model, tmp_path / format, format=format)


def _edit_config(directory: Path, **changes: object) -> None:
    config = json.loads((directory / "config.json").read_text())
    config.update(changes)
    (directory / "config.json").write_text(json.dumps(config))


def test_unsupported_architecture_lists_supported(tmp_path: Path) -> None:
    directory = _saved(tmp_path)
    _edit_config(directory, model_type="t5", architectures=["T5ForConditionalGeneration"])
    with pytest.raises(ValueError, match=r"unsupported architecture.*'t5'.*gpt2.*llama.*bert"):
        qkv.load(directory)
    _edit_config(directory, model_type="gpt2", architectures=["GPT2ForSequenceClassification"])
    with pytest.raises(ValueError, match="GPT2ForSequenceClassification.*GPT2LMHeadModel"):
        qkv.load(directory)


def test_unsupported_options_are_refused(tmp_path: Path) -> None:
    directory = _saved(tmp_path)
    _edit_config(directory, activation_function="relu")
    with pytest.raises(
        ValueError, match=r"config\.json: activation_function='relu' is not supported"
    ):
        qkv.load(directory)
    _edit_config(directory, activation_function="gelu_new", scale_attn_by_inverse_layer_idx=True)
    with pytest.raises(ValueError, match="scale_attn_by_inverse_layer_idx"):
        qkv.load(directory)
    llama = qkv.save(GPT(preset("llama-nano", vocab_size=64)), tmp_path / "l", format="hf")
    _edit_config(llama, rope_parameters={"rope_type": "yarn", "rope_theta": 1e4})
    with pytest.raises(ValueError, match="rope_type='yarn'"):
        qkv.load(llama)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no model directory"):
        qkv.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        qkv.load(tmp_path / "empty")
    for format in ("hf", "qkv"):
        directory = _saved(tmp_path, format)
        (directory / "model.safetensors").unlink()
        with pytest.raises(FileNotFoundError, match="model.safetensors"):
            qkv.load(directory)


@pytest.mark.parametrize("format", ["hf", "qkv"])
def test_truncated_safetensors_names_file_and_tensor(format: str, tmp_path: Path) -> None:
    directory = _saved(tmp_path, format)
    weights = directory / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 100])
    with pytest.raises(ValueError, match=r"model\.safetensors is truncated: tensor '.+'"):
        qkv.load(directory)
    weights.write_bytes(data[:5])
    with pytest.raises(ValueError, match="model.safetensors is truncated"):
        qkv.load(directory)


def test_corrupt_safetensors_header(tmp_path: Path) -> None:
    directory = _saved(tmp_path)
    weights = directory / "model.safetensors"
    data = bytearray(weights.read_bytes())
    (header_len,) = struct.unpack("<Q", data[:8])
    data[8 : 8 + 10] = b"\xff" * 10  # garble the JSON header
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt safetensors header"):
        qkv.load(directory)
    weights.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(ValueError, match="truncated or not a safetensors file"):
        qkv.load(directory)
    assert header_len > 0


def test_corrupt_bin(tmp_path: Path) -> None:
    directory = _saved(tmp_path)
    state = load_file(directory / "model.safetensors")
    (directory / "model.safetensors").unlink()
    torch.save(state, directory / "pytorch_model.bin")
    assert isinstance(qkv.load(directory), GPT)  # the intact .bin loads
    data = (directory / "pytorch_model.bin").read_bytes()
    (directory / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"pytorch_model\.bin could not be read.*truncated"):
        qkv.load(directory)
    (directory / "pytorch_model.bin").write_bytes(b"definitely not a zip file")
    with pytest.raises(ValueError, match=r"pytorch_model\.bin"):
        qkv.load(directory)


def _rewrite(directory: Path, change) -> None:  # type: ignore[no-untyped-def]
    state = load_file(directory / "model.safetensors")
    change(state)
    save_file(state, directory / "model.safetensors")


@pytest.mark.parametrize("format", ["hf", "qkv"])
def test_wrong_shape_names_tensor_expected_and_got(format: str, tmp_path: Path) -> None:
    directory = _saved(tmp_path, format)
    name = "transformer.h.1.attn.c_attn.weight"  # same name in both formats
    _rewrite(directory, lambda s: s.update({name: s[name][:, :-1].contiguous()}))
    expected = (48, 144) if format == "hf" else (144, 48)  # Conv1D (in, out) vs Linear
    got = (48, 143) if format == "hf" else (144, 47)
    with pytest.raises(ValueError, match=rf"'{name}' has shape \({got[0]}, {got[1]}\).*expects "
                       rf"\({expected[0]}, {expected[1]}\)"):  # fmt: skip
        qkv.load(directory)


@pytest.mark.parametrize("format", ["hf", "qkv"])
def test_missing_and_unexpected_tensors(format: str, tmp_path: Path) -> None:
    directory = _saved(tmp_path, format)
    _rewrite(directory, lambda s: s.pop("transformer.ln_f.bias"))
    with pytest.raises(ValueError, match=r"model\.safetensors: missing tensor.*'transformer.ln_f"):
        qkv.load(directory)
    directory = _saved(tmp_path / "b", format)
    _rewrite(directory, lambda s: s.update({"transformer.h.9.extra": torch.zeros(3)}))
    with pytest.raises(ValueError, match=r"unexpected tensor.*'transformer.h.9.extra'"):
        qkv.load(directory)


def test_config_weights_mismatch_and_bad_qkv_config(tmp_path: Path) -> None:
    directory = _saved(tmp_path, "qkv")
    config = json.loads((directory / "config.json").read_text())
    config["config"]["n_embd"] = 64
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="expects"):
        qkv.load(directory)
    config["config"]["n_layer"] = -1
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="invalid qkv config.*n_layer"):
        qkv.load(directory)
    (directory / "config.json").write_text("{broken")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        qkv.load(directory)


def test_save_errors(tmp_path: Path) -> None:
    model = GPT(preset("gpt-nano", vocab_size=64))
    with pytest.raises(ValueError, match="format must be 'qkv' or 'hf'"):
        qkv.save(model, tmp_path, format="onnx")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="qkv.save needs a qkv model"):
        qkv.save(torch.nn.Linear(2, 2), tmp_path / "lin")
    # GPT-2 with rotary and RMSNorm: no HF twin (rotary alone is a serial GPT-NeoX).
    odd = GPT(preset("gpt-nano", vocab_size=64, position="rotary", norm="rmsnorm"))
    with pytest.raises(ValueError, match="no Hugging Face architecture matches.*format='qkv'"):
        qkv.save(odd, tmp_path / "odd", format="hf")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        qkv.save(model, tmp_path / "file")
    with pytest.raises(ValueError, match="dtype must be"):
        qkv.load(qkv.save(Bert(preset("bert-tiny", vocab_size=64)), tmp_path / "b"), dtype="int8")
