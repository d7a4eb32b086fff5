"""Hook points: names, shapes and the exactness identities, on a GPT-2-style decoder, a
Llama-style (GQA, RMSNorm, rotary, SwiGLU) decoder and BERT."""

from __future__ import annotations

import copy

import pytest
import torch

import qkv.nn.attention as attention_module
from qkv.models import GPT, BertForMaskedLM, preset

MODELS = ["gpt-nano", "llama-nano", "bert-tiny"]


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    config = preset(name, vocab_size=97)
    model = BertForMaskedLM(config) if name.startswith("bert") else GPT(config)
    with torch.no_grad():  # non-zero biases, so the bias terms of the identities are tested
        for param_name, param in model.named_parameters():
            if param_name.endswith("bias"):
                param.normal_(0.0, 0.05)
    return model.double().eval()


def ids_for(model: torch.nn.Module) -> torch.Tensor:
    return torch.randint(1, 97, (2, 11), generator=torch.Generator().manual_seed(1))


def blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    return (
        list(model.bert.layers)
        if isinstance(model, BertForMaskedLM)
        else list(model.transformer["h"])
    )


@pytest.mark.parametrize("name", MODELS)
def test_names_and_shapes(name: str) -> None:
    model = build(name)
    ids = ids_for(model)
    names = model.hook_names()
    config = model.config
    for wanted in ("hook_embed", "blocks.0.hook_resid_pre", "blocks.0.attn.hook_z"):
        assert wanted in names
    if isinstance(model, GPT):
        assert "ln_final.hook_normalized" in names
        assert ("hook_pos_embed" in names) == (config.position == "learned")
    logits, cache = model.run_with_cache(ids)
    assert set(cache) == set(names)
    batch, length = ids.shape
    heads, kv_heads = config.n_head, getattr(config, "n_kv_head", None) or config.n_head
    d_head = config.n_embd // config.n_head
    assert cache["blocks.0.attn.hook_q"].shape == (batch, length, heads, d_head)
    assert cache["blocks.1.attn.hook_k"].shape == (batch, length, kv_heads, d_head)
    assert cache["blocks.1.attn.hook_v"].shape == (batch, length, kv_heads, d_head)
    assert cache["blocks.0.attn.hook_pattern"].shape == (batch, heads, length, length)
    assert cache["blocks.0.attn.hook_attn_scores"].shape == (batch, heads, length, length)
    assert cache["blocks.0.attn.hook_result"].shape == (batch, length, heads, config.n_embd)
    assert cache["blocks.0.hook_resid_post"].shape == (batch, length, config.n_embd)


@pytest.mark.parametrize("name", MODELS)
def test_identity_hooks_change_no_logit(name: str) -> None:
    model = build(name)
    ids = ids_for(model)
    plain = model(ids)
    cheap = [n for n in model.hook_names() if not n.endswith(("pattern", "scores", "result"))]
    same = model.run_with_hooks(ids, fwd_hooks=[(n, lambda x, hook: x.clone()) for n in cheap])
    assert torch.equal(same, plain)  # the same kernels ran: bit for bit
    everywhere = model.run_with_hooks(ids, fwd_hooks=[(lambda n: True, lambda x, hook: x)])
    torch.testing.assert_close(everywhere, plain, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", MODELS)
def test_zero_ablating_hook_z_equals_zeroing_the_out_projection_slice(name: str) -> None:
    model = build(name)
    ids = ids_for(model)
    layer, head = 1, 1
    d_head = model.config.n_embd // model.config.n_head

    def zero(z: torch.Tensor, hook: object) -> torch.Tensor:
        z = z.clone()
        z[:, :, head] = 0.0
        return z

    hooked = model.run_with_hooks(ids, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", zero)])
    edited = copy.deepcopy(model)
    with torch.no_grad():
        blocks(edited)[layer].attn.c_proj.weight[:, head * d_head : (head + 1) * d_head] = 0.0
    torch.testing.assert_close(hooked, edited(ids), rtol=0, atol=1e-10)
    assert not torch.allclose(hooked, model(ids))


@pytest.mark.parametrize("name", MODELS)
def test_results_sum_to_attn_out_and_residual_identities(name: str) -> None:
    model = build(name)
    _, cache = model.run_with_cache(ids_for(model))
    for index, block in enumerate(blocks(model)):
        prefix = f"blocks.{index}."
        bias = block.attn.c_proj.bias
        heads_sum = cache[prefix + "attn.hook_result"].sum(dim=2) + (0.0 if bias is None else bias)
        torch.testing.assert_close(heads_sum, cache[prefix + "hook_attn_out"], rtol=0, atol=1e-10)
        resid_pre, attn_out = cache[prefix + "hook_resid_pre"], cache[prefix + "hook_attn_out"]
        torch.testing.assert_close(cache[prefix + "hook_resid_mid"], resid_pre + attn_out)
        mid = cache[prefix + "hook_resid_mid"]
        if isinstance(model, BertForMaskedLM):  # post-norm: the MLP reads ln_1(resid_mid)
            mid = block.ln_1(mid)
        torch.testing.assert_close(
            cache[prefix + "hook_resid_post"], mid + cache[prefix + "hook_mlp_out"]
        )


@pytest.mark.parametrize("name", MODELS)
def test_cached_pattern_equals_forward_with_attentions(name: str) -> None:
    model = build(name)
    ids = ids_for(model)
    logits, weights = model.forward_with_attentions(ids)
    hooked, cache = model.run_with_cache(ids, names_filter=lambda n: n.endswith("hook_pattern"))
    for index, expected in enumerate(weights):
        torch.testing.assert_close(cache[f"blocks.{index}.attn.hook_pattern"], expected)
    torch.testing.assert_close(hooked, logits)
    scores = model.run_with_cache(ids, names_filter="blocks.0.attn.hook_attn_scores")[1]
    torch.testing.assert_close(scores["blocks.0.attn.hook_attn_scores"].softmax(-1), weights[0])


@pytest.mark.parametrize("name", MODELS)
def test_replacing_values_and_pattern(name: str) -> None:
    """Zero values leave only the output bias in attn_out; a pattern replaced by a uniform
    one over allowed keys gives the mean of the values, as computed by hand."""
    model = build(name)
    ids = ids_for(model)
    zeros = [("blocks.0.attn.hook_v", lambda v, hook: torch.zeros_like(v))]
    with model.hooks(zeros):
        _, cache = model.run_with_cache(ids, names_filter="blocks.0.hook_attn_out")
    bias = blocks(model)[0].attn.c_proj.bias
    attn_out = cache["blocks.0.hook_attn_out"]
    expected_out = torch.zeros_like(attn_out) if bias is None else bias.expand_as(attn_out)
    torch.testing.assert_close(attn_out, expected_out)

    def uniform(pattern: torch.Tensor, hook: object) -> torch.Tensor:
        allowed = (pattern > 0).to(pattern.dtype)
        return allowed / allowed.sum(-1, keepdim=True)

    with model.hooks([("blocks.0.attn.hook_pattern", uniform)]):
        names = ["blocks.0.attn.hook_v", "blocks.0.attn.hook_z"]
        _, cache = model.run_with_cache(ids, names_filter=names)
    values = cache["blocks.0.attn.hook_v"]  # (B, T, Hkv, D)
    groups = model.config.n_head // values.shape[2]
    values = values.repeat_interleave(groups, dim=2)  # (B, T, H, D)
    if isinstance(model, BertForMaskedLM):
        expected = values.mean(dim=1, keepdim=True).expand_as(values)
    else:
        expected = values.cumsum(dim=1) / torch.arange(1, values.shape[1] + 1).view(1, -1, 1, 1)
    torch.testing.assert_close(cache["blocks.0.attn.hook_z"], expected.to(values.dtype))


def test_no_hook_keeps_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    model = build("llama-nano")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the reference path ran without a pattern hook")

    monkeypatch.setattr(attention_module, "attend_through_hooks", refuse)
    model(ids_for(model))
    model.run_with_cache(ids_for(model), names_filter=lambda n: n.endswith("hook_z"))
    with pytest.raises(AssertionError, match="reference path"):
        model.run_with_cache(ids_for(model), names_filter="blocks.0.attn.hook_pattern")
    assert all(not point.active for point in model.hook_points().values())  # all removed


def test_bad_hooks_are_clear_errors() -> None:
    model = build("gpt-nano")
    ids = ids_for(model)
    with pytest.raises(ValueError, match="unknown hook name"):
        model.run_with_cache(ids, names_filter="blocks.9.attn.hook_z")
    with pytest.raises(ValueError, match="activation's shape"):
        model.run_with_hooks(ids, fwd_hooks=[("hook_embed", lambda x, hook: x[:, :1])])
    with pytest.raises(KeyError, match="names_filter"):
        model.run_with_cache(ids, names_filter="hook_embed")[1]["blocks.0.hook_resid_pre"]
    assert all(not point.active for point in model.hook_points().values())
