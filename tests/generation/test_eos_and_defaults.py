"""End-of-sequence lists, the repetition penalty and generation_config.json defaults, against
transformers' ``generate`` on the same random Llama (the oracle): generation stops at any of
several EOS ids where transformers stops, batched and alone; the penalty gives the same
greedy tokens; ``GenerationDefaults`` reads a model's files as transformers does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import qkv
from qkv.generation import GenerationDefaults

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

VOCAB = 97
NEW = 30


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory):
    """(transformers LlamaForCausalLM, the same weights in qkv, its folder)."""
    config = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=96,
        bos_token_id=None, eos_token_id=None, pad_token_id=None,
    )  # fmt: skip
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(config).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in hf.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.3)
    directory = tmp_path_factory.mktemp("llama")
    hf.save_pretrained(directory)
    return hf, qkv.load(directory), directory


def _hf_generate(hf, ids, mask=None, **options) -> torch.Tensor:
    with torch.no_grad():
        return hf.generate(
            ids, attention_mask=torch.ones_like(ids) if mask is None else mask,
            max_new_tokens=NEW, do_sample=False, **options,
        )  # fmt: skip


def _stops(hf, prompt: torch.Tensor) -> list[int]:
    """Two ids whose first appearances in the greedy continuation are at steps 6 and 14."""
    free = _hf_generate(hf, prompt)[0, prompt.shape[1] :].tolist()
    firsts = {token: free.index(token) for token in free}
    later = [t for t, step in firsts.items() if step >= 6]
    assert len(later) >= 2, f"continuation too repetitive for the test: {free}"
    return [later[0], later[1]]


def test_generation_stops_at_any_eos_id_like_transformers(pair) -> None:
    hf, model, _ = pair
    prompt = torch.tensor([[3, 17, 42, 8, 61]])
    eos = _stops(hf, prompt)
    for ids in (eos, eos[::-1], [eos[1]], eos[0]):
        expected = _hf_generate(hf, prompt, eos_token_id=ids, pad_token_id=eos[0])
        got = qkv.generate(model, prompt, max_new_tokens=NEW, temperature=0, eos_token_id=ids)
        assert got.tolist() == expected.tolist()
        assert got.shape[1] < prompt.shape[1] + NEW  # it did stop early


def test_a_left_padded_batch_stops_per_row_like_transformers(pair) -> None:
    hf, model, _ = pair
    rows = [[3, 17, 42, 8, 61], [50, 9, 33]]
    eos = _stops(hf, torch.tensor([rows[0]]))
    ids = torch.tensor([rows[0], [0, 0, *rows[1]]])  # (2, 5), second row left padded
    mask = torch.tensor([[1] * 5, [0, 0, 1, 1, 1]])
    expected = _hf_generate(hf, ids, mask, eos_token_id=eos, pad_token_id=eos[0])
    got = qkv.generate(model, ids, max_new_tokens=NEW, temperature=0, eos_token_id=eos,
                       attention_mask=mask)  # fmt: skip
    assert got[:, 5:].tolist() == expected[:, 5:].tolist()


@pytest.mark.parametrize("penalty", [1.3, 0.8])
def test_repetition_penalty_equals_transformers(pair, penalty: float) -> None:
    hf, model, _ = pair
    prompt = torch.tensor([[3, 17, 42, 8, 61, 3, 17]])
    expected = _hf_generate(hf, prompt, repetition_penalty=penalty)
    assert not torch.equal(expected, _hf_generate(hf, prompt))  # the penalty changes the output
    got = qkv.generate(model, prompt, max_new_tokens=NEW, temperature=0,
                       repetition_penalty=penalty)  # fmt: skip
    assert got.tolist() == expected.tolist()


def test_the_generation_config_stops_where_transformers_stops(pair, tmp_path: Path) -> None:
    hf, model, directory = pair
    prompt = torch.tensor([[3, 17, 42, 8, 61]])
    eos = _stops(hf, prompt)
    (directory / "generation_config.json").write_text(
        json.dumps({"eos_token_id": eos, "do_sample": False, "max_new_tokens": NEW})
    )
    oracle = transformers.LlamaForCausalLM.from_pretrained(directory).eval()
    with torch.no_grad():
        expected = oracle.generate(prompt, attention_mask=torch.ones_like(prompt))
    defaults = GenerationDefaults.from_dir(directory)
    assert defaults.eos_token_id == tuple(eos) and defaults.new_tokens(5) == NEW
    got = qkv.generate(model, prompt, max_new_tokens=defaults.new_tokens(5),
                       eos_token_id=list(defaults.eos_token_id), **defaults.sampling())  # fmt: skip
    assert got.tolist() == expected.tolist()


def test_defaults_read_like_transformers(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"eos_token_id": [128001, 128009]}))
    assert GenerationDefaults.from_dir(tmp_path).eos_token_id == (128001, 128009)  # no gen config
    (tmp_path / "generation_config.json").write_text(json.dumps(
        {"do_sample": True, "temperature": 0.6, "top_p": 0.9, "eos_token_id": [128001, 128008,
         128009], "min_p": 0.05, "num_beams": 1, "transformers_version": "4.45.0"}))  # fmt: skip
    defaults = GenerationDefaults.from_dir(tmp_path)
    expected = transformers.GenerationConfig.from_pretrained(tmp_path)
    assert list(defaults.eos_token_id) == expected.eos_token_id
    # unset fields take transformers' global defaults (top_k=50 while sampling)
    globals_ = transformers.GenerationConfig._get_default_generation_params()
    assert defaults.sampling() == {"temperature": 0.6, "top_k": globals_["top_k"], "top_p": 0.9}
    assert defaults.unsupported == ("min_p=0.05",)
    assert defaults.new_tokens(7) is None
    greedy = GenerationDefaults.from_generation_config({"eos_token_id": 2, "max_length": 20})
    assert greedy.sampling() == {"temperature": 0.0, "top_k": None, "top_p": None}
    assert greedy.eos_token_id == (2,) and greedy.new_tokens(7) == 13


@pytest.mark.parametrize("bad", ["2", [], [1, "x"], [-1], [VOCAB], 2.0, True])
def test_bad_eos_ids_are_named(pair, bad) -> None:
    _, model, _ = pair
    with pytest.raises(ValueError, match="eos_token_id"):
        qkv.generate(model, torch.tensor([[1, 2]]), max_new_tokens=2, eos_token_id=bad)


def test_bad_repetition_penalty_is_named(pair) -> None:
    _, model, _ = pair
    for bad in (0, -1.0, float("nan"), "1.1"):
        with pytest.raises(ValueError, match="repetition_penalty"):
            qkv.generate(model, torch.tensor([[1, 2]]), max_new_tokens=2, repetition_penalty=bad)
