"""Numeric parity with Hugging Face transformers on small random models (no downloads).

The weight copies here are the documented name mapping (see qkv.models.gpt / bert
docstrings); the full state-dict adapters live in qkv.io.
"""

import pytest
import torch

from qkv.models import GPT, Bert, BertConfig, BertForMaskedLM, GPTConfig

transformers = pytest.importorskip("transformers")


def gpt2_pair():
    hf_config = transformers.GPT2Config(
        vocab_size=99,
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=4,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    ours = GPT(GPTConfig(vocab_size=99, n_positions=64, n_embd=32, n_layer=2, n_head=4)).eval()
    conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    state = {}
    for name, tensor in hf.state_dict().items():
        if name.endswith(".attn.bias") or name.endswith(".attn.masked_bias"):
            continue
        state[name] = tensor.t() if name.endswith(conv1d) else tensor
    ours.load_state_dict(state)
    return hf, ours


def llama_pair(dtype=torch.float32):
    hf_config = transformers.LlamaConfig(
        vocab_size=99,
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=False,
    )
    hf = transformers.LlamaForCausalLM(hf_config).eval()
    ours = GPT(
        GPTConfig(
            vocab_size=99,
            n_positions=128,
            n_embd=64,
            n_layer=2,
            n_head=4,
            n_kv_head=2,
            intermediate_size=176,
            position="rotary",
            norm="rmsnorm",
            norm_eps=1e-6,
            mlp="swiglu",
            bias=False,
            tie_embeddings=False,
        )
    ).eval()
    hf_state = hf.state_dict()
    state = {
        "transformer.wte.weight": hf_state["model.embed_tokens.weight"],
        "transformer.ln_f.weight": hf_state["model.norm.weight"],
        "lm_head.weight": hf_state["lm_head.weight"],
    }
    for i in range(2):
        prefix, ours_prefix = f"model.layers.{i}.", f"transformer.h.{i}."
        state[ours_prefix + "attn.c_attn.weight"] = torch.cat(
            [hf_state[prefix + f"self_attn.{p}_proj.weight"] for p in "qkv"]
        )
        state[ours_prefix + "attn.c_proj.weight"] = hf_state[prefix + "self_attn.o_proj.weight"]
        state[ours_prefix + "ln_1.weight"] = hf_state[prefix + "input_layernorm.weight"]
        state[ours_prefix + "ln_2.weight"] = hf_state[prefix + "post_attention_layernorm.weight"]
        for p in ("gate_proj", "up_proj", "down_proj"):
            state[ours_prefix + f"mlp.{p}.weight"] = hf_state[prefix + f"mlp.{p}.weight"]
    ours.load_state_dict(state)
    return hf.to(dtype), ours.to(dtype)


def test_gpt2_logits_and_greedy_tokens_match_transformers():
    hf, ours = gpt2_pair()
    ids = torch.randint(0, 99, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=1e-4)
        expected = hf.generate(ids, max_new_tokens=10, do_sample=False, pad_token_id=0)
    import qkv

    assert torch.equal(qkv.generate(ours, ids, max_new_tokens=10, temperature=0), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_llama_logits_match_transformers(dtype):
    hf, ours = llama_pair(dtype)
    ids = torch.randint(0, 99, (2, 20))
    with torch.no_grad():
        expected = hf(ids).logits
        got = ours(ids)
    tolerance = dict(atol=1e-5, rtol=1e-4) if dtype == torch.float32 else dict(atol=3e-2, rtol=0)
    torch.testing.assert_close(got.float(), expected.float(), **tolerance)


def test_llama_padded_greedy_matches_transformers():
    hf, ours = llama_pair()
    ids = torch.randint(1, 99, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[0, :3] = 0
    ids[0, :3] = 0
    import qkv

    with torch.no_grad():
        expected = hf.generate(
            ids, attention_mask=mask, max_new_tokens=8, do_sample=False, pad_token_id=0
        )
    got = qkv.generate(ours, ids, attention_mask=mask, max_new_tokens=8, temperature=0)
    assert torch.equal(got, expected)


def test_bert_masked_lm_matches_transformers():
    hf_config = transformers.BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    hf = transformers.BertForMaskedLM(hf_config).eval()
    ours = BertForMaskedLM(
        BertConfig(
            vocab_size=99,
            n_embd=32,
            n_layer=2,
            n_head=4,
            intermediate_size=64,
            n_positions=64,
            dropout=0.0,
            attention_dropout=0.0,
        )
    ).eval()
    hf_state = hf.state_dict()
    state = {}
    for name, tensor in hf_state.items():
        if name.startswith("bert.embeddings."):
            state[name] = tensor
    for i in range(2):
        prefix, ours_prefix = f"bert.encoder.layer.{i}.", f"bert.layers.{i}."
        state[ours_prefix + "attn.c_attn.weight"] = torch.cat(
            [hf_state[prefix + f"attention.self.{p}.weight"] for p in ("query", "key", "value")]
        )
        state[ours_prefix + "attn.c_attn.bias"] = torch.cat(
            [hf_state[prefix + f"attention.self.{p}.bias"] for p in ("query", "key", "value")]
        )
        pairs = {
            "attn.c_proj": "attention.output.dense",
            "ln_1": "attention.output.LayerNorm",
            "mlp.c_fc": "intermediate.dense",
            "mlp.c_proj": "output.dense",
            "ln_2": "output.LayerNorm",
        }
        for ours_name, hf_name in pairs.items():
            for kind in ("weight", "bias"):
                state[f"{ours_prefix}{ours_name}.{kind}"] = hf_state[f"{prefix}{hf_name}.{kind}"]
    for name in (
        "transform.dense.weight",
        "transform.dense.bias",
        "transform.LayerNorm.weight",
        "transform.LayerNorm.bias",
        "decoder.weight",
    ):
        state[f"cls.predictions.{name}"] = hf_state[f"cls.predictions.{name}"]
    state["cls.predictions.decoder.bias"] = hf_state["cls.predictions.bias"]
    ours.load_state_dict(state)

    ids = torch.randint(1, 99, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 6:] = 0
    types = torch.zeros_like(ids)
    types[:, 5:] = 1
    with torch.no_grad():
        expected = hf(ids, attention_mask=mask, token_type_ids=types).logits
        got = ours(ids, attention_mask=mask, token_type_ids=types)
        hidden = Bert.forward(ours.bert, ids, mask, types)
        hf_hidden = hf.bert(ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(hidden[real], hf_hidden[real], atol=1e-5, rtol=1e-4)
