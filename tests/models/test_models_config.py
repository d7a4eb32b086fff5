"""Configs validate with clear errors, round-trip through JSON, and presets build."""

import json

import pytest

from qkv.models import (
    GPT,
    PRESETS,
    Bert,
    BertConfig,
    BertForMaskedLM,
    GPTConfig,
    build,
    config_from_dict,
    preset,
)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(n_layer=0), "n_layer must be a positive int, got 0"),
        (dict(n_head=5), "n_embd \\(768\\) must be divisible by n_head \\(5\\)"),
        (dict(n_kv_head=5), "multiple of n_kv_head"),
        (dict(position="alibi"), "position must be one of 'learned', 'rotary', got 'alibi'"),
        (dict(norm="batchnorm"), "norm must be one of"),
        (dict(mlp="relu"), "mlp must be one of"),
        (dict(dropout=1.0), "dropout must be in \\[0, 1\\)"),
        (dict(rope_theta=-1.0), "rope_theta must be a positive number"),
        (dict(vocab_size=2.5), "vocab_size must be a positive int"),
        (dict(position="rotary", n_embd=36, n_head=4), "head_dim must be even"),
        (dict(attention_backend=""), "attention_backend"),
    ],
)
def test_gpt_config_errors_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**kwargs)


def test_bert_config_errors():
    with pytest.raises(ValueError, match="BertConfig.n_embd \\(100\\) must be divisible"):
        BertConfig(n_embd=100)
    with pytest.raises(ValueError, match="pad_token_id"):
        BertConfig(vocab_size=10, pad_token_id=10)
    with pytest.raises(ValueError, match="architecture"):
        BertConfig(architecture="gpt")


def test_derived_fields():
    gpt2 = GPTConfig()
    assert (gpt2.n_kv_head, gpt2.head_dim, gpt2.intermediate_size) == (12, 64, 3072)
    llama = GPTConfig(n_embd=768, mlp="swiglu")
    assert llama.intermediate_size == 2048
    assert gpt2.max_seq_len == 1024


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(name):
    config = preset(name)
    data = json.loads(json.dumps(config.to_dict()))
    assert data["architecture"] in ("gpt", "bert")
    assert config_from_dict(data) == config
    assert type(config).from_dict(data) == config


def test_from_dict_refuses_unknown_fields_and_architectures():
    with pytest.raises(ValueError, match="unknown GPTConfig field"):
        GPTConfig.from_dict({"architecture": "gpt", "n_layers": 3})
    with pytest.raises(ValueError, match="architecture must be one of"):
        config_from_dict({"architecture": "t5"})


def test_preset_overrides_and_errors():
    config = preset("baby-gpt", vocab_size=1234)
    assert config.vocab_size == 1234 and config.n_layer == 4 and config.n_positions == 64
    assert PRESETS["baby-gpt"].vocab_size != 1234  # presets are not mutated
    wider = preset("gpt2", n_embd=1024, n_head=16)
    assert (wider.head_dim, wider.intermediate_size) == (64, 4096)
    with pytest.raises(ValueError, match="unknown preset 'gpt-5'"):
        preset("gpt-5")
    with pytest.raises(ValueError, match="unknown GPTConfig field"):
        preset("gpt-nano", layers=2)


def test_preset_shapes():
    baby = preset("baby-gpt")
    assert (baby.n_layer, baby.n_head, baby.n_embd, baby.n_positions) == (4, 4, 128, 64)
    minilm = preset("minilm-l6")
    assert (minilm.n_layer, minilm.n_embd, minilm.intermediate_size) == (6, 384, 1536)
    assert GPT(preset("gpt2")).num_parameters() == 124_439_808  # GPT-2 small


def test_build():
    assert isinstance(build(preset("gpt-nano")), GPT)
    assert isinstance(build(preset("bert-tiny", vocab_size=50)), Bert)
    assert isinstance(build(preset("bert-tiny", vocab_size=50), masked_lm=True), BertForMaskedLM)
    with pytest.raises(ValueError, match="GPTConfig or BertConfig"):
        build({"architecture": "gpt"})
    with pytest.raises(ValueError, match="masked_lm=True needs a BertConfig"):
        build(preset("gpt-nano"), masked_lm=True)
