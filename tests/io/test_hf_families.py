"""Parity per decoder family with transformers (the oracle) on tiny random models built here:
logits on prompts longer than the sliding window, greedy KV-cache decoding past the window,
left-padded batches, and export -> ``from_pretrained`` -> the same logits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import qkv

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

VOCAB = 97
WINDOW = 8
_COMMON = dict(
    vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
    num_attention_heads=4, max_position_embeddings=128, bos_token_id=None, eos_token_id=None,
    pad_token_id=None,
)  # fmt: skip
_GQA = dict(num_key_value_heads=2)

# family -> (config class, model class, config arguments beyond _COMMON)
FAMILIES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "pythia": ("GPTNeoXConfig", "GPTNeoXForCausalLM", dict(
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                         "partial_rotary_factor": 0.25},
        use_parallel_residual=True, hidden_act="gelu")),
    "neox-serial": ("GPTNeoXConfig", "GPTNeoXForCausalLM", dict(
        rope_parameters={"rope_type": "default", "rope_theta": 500.0,
                         "partial_rotary_factor": 0.5},
        use_parallel_residual=False, hidden_act="gelu_new", attention_bias=False)),
    "llama3": ("LlamaConfig", "LlamaForCausalLM", dict(**_GQA, rope_parameters={
        "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 32})),
    "llama-linear": ("LlamaConfig", "LlamaForCausalLM", dict(
        **_GQA, rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0})),
    "smollm2": ("LlamaConfig", "LlamaForCausalLM", dict(
        **_GQA, tie_word_embeddings=True, rope_parameters={"rope_type": "default",
                                                             "rope_theta": 100000.0})),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(
        **_GQA, sliding_window=WINDOW, head_dim=16)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(**_GQA, tie_word_embeddings=True)),
    "qwen2-sliding": ("Qwen2Config", "Qwen2ForCausalLM", dict(
        **_GQA, use_sliding_window=True, sliding_window=WINDOW, max_window_layers=1)),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(**_GQA, head_dim=24)),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", dict(
        **_GQA, head_dim=16, sliding_window=WINDOW, query_pre_attn_scalar=24,
        attn_logit_softcapping=5.0, final_logit_softcapping=3.0)),
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", dict(
        **_GQA, head_dim=16, sliding_window=WINDOW, query_pre_attn_scalar=16,
        layer_types=["sliding_attention", "full_attention"],
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                         "full_attention": {"rope_type": "linear", "factor": 2.0,
                                            "rope_theta": 1000000.0}})),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", dict(**_GQA, sliding_window=WINDOW)),
}  # fmt: skip


def _randomize(model: nn.Module, std: float = 0.2) -> nn.Module:
    """Every parameter random (norm scales too), so a swapped tensor cannot go unnoticed."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=generator) * std
            parameter.copy_(noise + (1.0 if parameter.dim() == 1 else 0.0))
    return model.eval()


def hf_model(family: str, std: float = 0.2) -> nn.Module:
    config_class, model_class, extra = FAMILIES[family]
    config = getattr(transformers, config_class)(**_COMMON | extra)
    config._attn_implementation = "eager"
    return _randomize(getattr(transformers, model_class)(config), std)


@pytest.fixture(params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest) -> str:
    return request.param


def test_logits_match_transformers_past_the_window(family: str, tmp_path: Path) -> None:
    hf = hf_model(family)
    hf.save_pretrained(tmp_path)
    model = qkv.load(tmp_path)
    ids = torch.randint(0, VOCAB, (2, 3 * WINDOW + 5), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs = hf(ids).logits
        ours = model(ids)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    # Export -> from_pretrained -> the same logits.
    qkv.save(model, tmp_path / "out", format="hf")
    again = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert type(again).__name__ == FAMILIES[family][1]
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, theirs, atol=1e-5, rtol=0)


def test_greedy_decoding_matches_transformers_generate(family: str, tmp_path: Path) -> None:
    hf = hf_model(family, std=0.5)
    hf.save_pretrained(tmp_path)
    model = qkv.load(tmp_path)
    prompt = torch.randint(0, VOCAB, (1, WINDOW + 3), generator=torch.Generator().manual_seed(1))
    new = 4 * WINDOW  # >= 30 tokens past the window
    with torch.no_grad():
        theirs = hf.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=new,
            min_new_tokens=new,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=None,
        )
    ours = qkv.generate(model, prompt, max_new_tokens=new, temperature=0)
    assert ours.tolist() == theirs.tolist()


@pytest.mark.parametrize("name", ["gemma2", "mistral", "qwen2-sliding"])
def test_left_padded_batch_matches_each_prompt_alone(name: str, tmp_path: Path) -> None:
    hf_model(name, std=0.5).save_pretrained(tmp_path)
    model = qkv.load(tmp_path)
    generator = torch.Generator().manual_seed(2)
    short = torch.randint(1, VOCAB, (1, WINDOW - 3), generator=generator)
    long = torch.randint(1, VOCAB, (1, WINDOW + 4), generator=generator)
    pad = long.shape[1] - short.shape[1]
    batch = torch.cat((torch.cat((torch.zeros(1, pad, dtype=torch.long), short), 1), long))
    mask = torch.ones_like(batch)
    mask[0, :pad] = 0
    together = qkv.generate(model, batch, attention_mask=mask, max_new_tokens=12, temperature=0)
    alone = qkv.generate(model, long, max_new_tokens=12, temperature=0)
    assert together[1].tolist() == alone[0].tolist()
    # The windowed short row also equals its own unpadded run while it fits in the window.
    alone_short = qkv.generate(model, short, max_new_tokens=2, temperature=0)
    assert together[0, pad : pad + short.shape[1] + 2].tolist() == alone_short[0].tolist()


@pytest.mark.parametrize(
    ("family", "field", "value"),
    [
        ("llama3", "rope_parameters", {"rope_type": "yarn", "rope_theta": 1e4, "factor": 2.0}),
        ("phi3", "rope_parameters", {"rope_type": "longrope", "rope_theta": 1e4}),
        ("gemma2", "hidden_activation", "gelu"),
        ("pythia", "hidden_act", "relu"),
        ("qwen2", "layer_types", ["chunked_attention", "full_attention"]),
    ],
)
def test_unimplemented_fields_are_refused_by_name(
    family: str, field: str, value: Any, tmp_path: Path
) -> None:
    import json

    hf_model(family).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config[field] = value
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=field.split("_parameters")[0]):
        qkv.load(tmp_path)
