"""Parity with Hugging Face transformers (the oracle) on small random models made here, in both
directions: HF save_pretrained -> qkv.load, and qkv.save(format="hf") -> from_pretrained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import qkv
from qkv.models import GPT, Bert, BertForMaskedLM, preset

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

VOCAB = 61


def _randomize(model: nn.Module, std: float = 0.2) -> nn.Module:
    """Every parameter random (LayerNorm scales and biases too), so a swapped or transposed
    tensor cannot go unnoticed."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=generator) * std
            parameter.copy_(noise + (1.0 if parameter.dim() == 1 and parameter.numel() else 0.0))
    return model.eval()


def _hf_model(family: str) -> nn.Module:
    t = transformers
    if family == "gpt2":
        config = t.GPT2Config(
            vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4,
            bos_token_id=None, eos_token_id=None,
        )  # fmt: skip
        return t.GPT2LMHeadModel(config)
    if family == "llama":
        config = t.LlamaConfig(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=80, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
            rope_theta=500.0, bos_token_id=None, eos_token_id=None,
        )  # fmt: skip
        return t.LlamaForCausalLM(config)
    config = t.BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    return t.BertForMaskedLM(config) if family == "bert-mlm" else t.BertModel(config)


def _qkv_model(family: str) -> nn.Module:
    if family == "gpt2":
        return GPT(preset("gpt-nano", vocab_size=VOCAB, n_positions=64))
    if family == "llama":
        return GPT(preset("llama-nano", vocab_size=VOCAB, n_positions=64))
    config = preset("bert-tiny", vocab_size=VOCAB, n_positions=64)
    return BertForMaskedLM(config) if family == "bert-mlm" else Bert(config)


def _hf_output(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def _qkv_output(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    with torch.no_grad():
        return model(ids, attention_mask=mask)


def _inputs(family: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    ids = torch.randint(0, VOCAB, (3, 17))
    if family.startswith("bert"):  # right padding, as a tokenizer batch has it
        mask = torch.ones_like(ids)
        mask[1, 11:] = 0
        mask[2, 5:] = 0
        return ids, mask
    return ids, None


FAMILIES = ["gpt2", "llama", "bert", "bert-mlm"]
EXPECTED = {"gpt2": GPT, "llama": GPT, "bert": Bert, "bert-mlm": BertForMaskedLM}
HF_CLASS = {
    "gpt2": "GPT2LMHeadModel",
    "llama": "LlamaForCausalLM",
    "bert": "BertModel",
    "bert-mlm": "BertForMaskedLM",
}


@pytest.mark.parametrize("family", FAMILIES)
def test_hf_to_qkv(family: str, tmp_path: Path) -> None:
    hf = _randomize(_hf_model(family))
    hf.save_pretrained(tmp_path)
    model = qkv.load(tmp_path)
    assert type(model) is EXPECTED[family]
    assert not model.training
    ids, mask = _inputs(family)
    ours, theirs = _qkv_output(model, ids, mask), _hf_output(hf, ids, mask)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_qkv_to_hf(family: str, tmp_path: Path) -> None:
    model = _randomize(_qkv_model(family))
    if family == "gpt2":  # tied lm_head: the randomised wte is the head
        assert model.lm_head.weight is model.transformer["wte"].weight
    qkv.save(model, tmp_path, format="hf")
    auto = {
        "gpt2": transformers.AutoModelForCausalLM,
        "llama": transformers.AutoModelForCausalLM,
        "bert": transformers.AutoModel,
        "bert-mlm": transformers.AutoModelForMaskedLM,
    }[family]
    hf = auto.from_pretrained(tmp_path).eval()
    assert type(hf).__name__ == HF_CLASS[family]
    ids, mask = _inputs(family)
    torch.testing.assert_close(
        _hf_output(hf, ids, mask), _qkv_output(model, ids, mask), atol=1e-5, rtol=0
    )
    # And back: HF-format directory -> qkv gives the same model.
    again = qkv.load(tmp_path)
    torch.testing.assert_close(_qkv_output(again, ids, mask), _qkv_output(model, ids, mask))


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_greedy_generation_matches_transformers(family: str, tmp_path: Path) -> None:
    hf = _randomize(_hf_model(family), std=0.5)
    hf.save_pretrained(tmp_path)
    model = qkv.load(tmp_path)
    prompt = torch.randint(0, VOCAB, (1, 7))
    with torch.no_grad():
        theirs = hf.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),  # else HF masks prompt tokens equal to pad
            max_new_tokens=24,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=None,
        )
    ours = qkv.generate(model, prompt, max_new_tokens=24, temperature=0)
    assert ours.tolist() == theirs.tolist()


def test_tied_weights_stay_tied_after_load(tmp_path: Path) -> None:
    hf = _randomize(_hf_model("gpt2"))
    hf.save_pretrained(tmp_path)
    model = qkv.load(tmp_path)
    assert model.lm_head.weight is model.transformer["wte"].weight
    mlm = _randomize(_hf_model("bert-mlm"))
    mlm.save_pretrained(tmp_path / "mlm")
    loaded = qkv.load(tmp_path / "mlm")
    assert loaded.cls.predictions.decoder.weight is loaded.bert.embeddings.word_embeddings.weight


def test_base_models_and_bin_weights(tmp_path: Path) -> None:
    """GPT2Model / LlamaModel (no head, no prefix), pytorch_model.bin, bert.-prefixed BertModel
    weights and sharded checkpoints all load to the same numbers."""
    from safetensors.torch import save_file

    ids = torch.randint(0, VOCAB, (2, 9))
    for family, base in (("gpt2", "GPT2Model"), ("llama", "LlamaModel")):
        hf = _randomize(_hf_model(family))
        getattr(hf, "transformer" if family == "gpt2" else "model").save_pretrained(tmp_path / base)
        model = qkv.load(tmp_path / base)
        hidden = _hf_output(getattr(transformers, base).from_pretrained(tmp_path / base), ids, None)
        expected = hidden @ model.transformer["wte"].weight.T  # read out through the embeddings
        torch.testing.assert_close(_qkv_output(model, ids, None), expected, atol=1e-5, rtol=0)
    hf = _randomize(_hf_model("bert"))
    hf.save_pretrained(tmp_path / "bin")  # then swap its safetensors for a torch pickle
    (tmp_path / "bin" / "model.safetensors").unlink()
    torch.save(hf.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    expected = _hf_output(hf, ids, None)
    torch.testing.assert_close(_qkv_output(qkv.load(tmp_path / "bin"), ids, None), expected)
    # Sharded safetensors with an index.json, bert.-prefixed names.
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    torch.testing.assert_close(_qkv_output(qkv.load(tmp_path / "sharded"), ids, None), expected)
    # BertModel weights saved with a "bert." prefix (as some exporters write them).
    (tmp_path / "prefixed").mkdir()
    save_file(
        {f"bert.{k}": v.contiguous() for k, v in hf.state_dict().items()},
        tmp_path / "prefixed" / "model.safetensors",
    )
    (tmp_path / "prefixed" / "config.json").write_text(
        (tmp_path / "bin" / "config.json").read_text()
    )
    torch.testing.assert_close(_qkv_output(qkv.load(tmp_path / "prefixed"), ids, None), expected)


def test_pooler_is_kept_through_both_formats(tmp_path: Path) -> None:
    hf = _randomize(_hf_model("bert"))
    hf.save_pretrained(tmp_path / "a")
    model = qkv.load(tmp_path / "a")
    assert set(model.hf_extras) == {"pooler.dense.weight", "pooler.dense.bias"}
    qkv.save(model, tmp_path / "b")  # qkv format keeps the extras
    qkv.save(qkv.load(tmp_path / "b"), tmp_path / "c", format="hf")
    back = transformers.BertModel.from_pretrained(tmp_path / "c").eval()
    ids, mask = _inputs("bert")
    with torch.no_grad():
        torch.testing.assert_close(
            back(input_ids=ids, attention_mask=mask).pooler_output,
            hf(input_ids=ids, attention_mask=mask).pooler_output,
        )


def test_dtype_and_device_arguments(tmp_path: Path) -> None:
    hf = _randomize(_hf_model("llama"))
    hf.save_pretrained(tmp_path)
    model = qkv.load(tmp_path, dtype=torch.bfloat16, device="cpu")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    ids, _ = _inputs("llama")
    reference = _hf_output(hf, ids, None)  # fp32
    theirs = _hf_output(hf.to(torch.bfloat16), ids, None)
    ours = _qkv_output(model, ids, None)
    assert ours.dtype == torch.bfloat16
    # flash-attention's precision rule: no worse than 2x transformers' own bf16 error.
    our_error = (ours.float() - reference).abs().max()
    their_error = (theirs.float() - reference).abs().max()
    assert our_error <= 2 * their_error + 1e-3, (our_error, their_error)
    assert qkv.load(tmp_path, dtype="fp32").lm_head.weight.dtype == torch.float32


def test_llama_variants_bias_mqa_tied_head_dim(tmp_path: Path) -> None:
    """Qwen-style biases, one key/value head, tied embeddings and head_dim != hidden / heads."""
    config = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=80, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, head_dim=16, attention_bias=True,
        mlp_bias=True, tie_word_embeddings=True, bos_token_id=None, eos_token_id=None,
    )  # fmt: skip
    hf = _randomize(transformers.LlamaForCausalLM(config))
    hf.save_pretrained(tmp_path / "hf")
    model = qkv.load(tmp_path / "hf")
    assert model.config.head_dim == 16 and model.config.n_kv_head == 1 and model.config.bias
    ids, _ = _inputs("llama")
    torch.testing.assert_close(_qkv_output(model, ids, None), _hf_output(hf, ids, None))
    qkv.save(model, tmp_path / "back", format="hf")
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back").eval()
    torch.testing.assert_close(_hf_output(back, ids, None), _hf_output(hf, ids, None))
