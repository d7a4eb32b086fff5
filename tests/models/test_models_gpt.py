"""GPT: losses, cache, padding and parameter layout, against uncached / unpadded oracles."""

import pytest
import torch

from qkv.models import GPT, language_model_loss, preset

PRESET_NAMES = ["gpt-nano", "llama-nano"]


@pytest.fixture(params=PRESET_NAMES)
def model(request):
    return GPT(preset(request.param, vocab_size=61)).eval()


def test_loss_equals_cross_entropy_ignoring_minus_100(model):
    ids = torch.randint(0, 61, (2, 10))
    targets = torch.randint(0, 61, (2, 10))
    targets[0, :3] = -100
    logits = model(ids)
    loss = language_model_loss(logits, targets)
    kept = targets != -100
    expected = -logits.log_softmax(-1)[kept].gather(-1, targets[kept][:, None]).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()  # trainable end to end
    assert model.transformer["wte"].weight.grad is not None


def test_logits_with_and_without_cache_are_equal(model):
    ids = torch.randint(0, 61, (2, 12))
    full = model(ids)
    cache = model.make_cache(batch_size=2, max_len=16)
    pieces = [model(ids[:, :8], cache=cache)]
    for t in range(8, 12):
        pieces.append(model(ids[:, t : t + 1], cache=cache))
    assert cache.length == 12
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=1e-4)


def test_left_padded_batch_equals_each_prompt_alone(model):
    short = torch.randint(0, 61, (1, 5))
    long = torch.randint(0, 61, (1, 9))
    ids = torch.cat([torch.cat([torch.zeros(1, 4, dtype=torch.long), short], 1), long])
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[0, :4] = 0
    batched = model(ids, attention_mask=mask)
    torch.testing.assert_close(batched[0, 4:], model(short)[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(batched[1], model(long)[0], atol=1e-5, rtol=1e-4)


def test_forward_with_attentions_leaves_logits_unchanged(model):
    ids = torch.randint(0, 61, (2, 6))
    logits, attentions = model.forward_with_attentions(ids)
    torch.testing.assert_close(logits, model(ids), atol=1e-5, rtol=1e-5)
    assert len(attentions) == model.config.n_layer
    assert attentions[0].shape == (2, model.config.n_head, 6, 6)
    torch.testing.assert_close(attentions[0].sum(-1), torch.ones(2, model.config.n_head, 6))


def test_gpt2_parameter_names_and_tying():
    model = GPT(preset("gpt-nano"))
    names = set(model.state_dict())
    for name in (
        "transformer.wte.weight",
        "transformer.wpe.weight",
        "transformer.h.0.ln_1.weight",
        "transformer.h.0.ln_1.bias",
        "transformer.h.0.attn.c_attn.weight",
        "transformer.h.0.attn.c_attn.bias",
        "transformer.h.0.attn.c_proj.weight",
        "transformer.h.0.ln_2.weight",
        "transformer.h.0.mlp.c_fc.weight",
        "transformer.h.0.mlp.c_proj.weight",
        "transformer.ln_f.weight",
        "lm_head.weight",
    ):
        assert name in names, name
    assert model.lm_head.weight is model.transformer["wte"].weight
    llama = GPT(preset("llama-nano"))
    assert llama.lm_head.weight is not llama.transformer["wte"].weight
    assert "transformer.wpe.weight" not in llama.state_dict()
    assert not any(name.endswith("bias") for name in llama.state_dict())
    assert "transformer.h.1.mlp.gate_proj.weight" in llama.state_dict()


def test_context_and_input_errors(model):
    n = model.config.n_positions
    with pytest.raises(ValueError, match=f"exceeds the model's context n_positions={n}"):
        model(torch.zeros(1, n + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="input_ids must be an integer tensor"):
        model(torch.zeros(4))
    with pytest.raises(ValueError, match="attention_mask must have shape"):
        model(torch.zeros(1, 4, dtype=torch.long), attention_mask=torch.ones(1, 3))
    with pytest.raises(ValueError, match="targets must have shape"):
        language_model_loss(model(torch.zeros(1, 4, dtype=torch.long)), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="exceeds the model's context"):
        model.make_cache(batch_size=1, max_len=n + 1)


def test_forward_returns_one_tensor_and_refuses_the_moved_arguments(model):
    ids = torch.randint(0, 61, (1, 5))
    assert isinstance(model(ids), torch.Tensor)
    with pytest.raises(ValueError, match=r"no longer takes targets=.*language_model_loss\("):
        model(ids, targets=ids)
    with pytest.raises(ValueError, match=r"return_attentions=.*forward_with_attentions"):
        model(ids, return_attentions=True)
    with pytest.raises(TypeError, match="unexpected keyword argument 'tragets'"):
        model(ids, tragets=ids)


def test_forward_with_attentions_follows_the_cache(model):
    ids = torch.randint(0, 61, (1, 7))
    _, full = model.forward_with_attentions(ids)
    cache = model.make_cache(batch_size=1, max_len=8)
    model(ids[:, :6], cache=cache)
    logits, last = model.forward_with_attentions(ids[:, 6:], cache=cache)
    assert logits.shape == (1, 1, 61) and last[0].shape == (1, model.config.n_head, 1, 7)
    torch.testing.assert_close(last[0][0, :, 0], full[0][0, :, 6], atol=1e-5, rtol=1e-4)


def test_bf16_forward_runs_and_tracks_fp32():
    model = GPT(preset("llama-nano", vocab_size=61)).eval()
    ids = torch.randint(0, 61, (1, 8))
    reference = model(ids)
    low = model.to(torch.bfloat16)(ids)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), reference, atol=0.1, rtol=0.1)
