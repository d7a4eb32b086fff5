"""Hook points and interventions on the model families: parallel residual (Pythia), sandwich
norms with soft-capping and alternating windows (Gemma 2), q/k norm with a head size that is
not width / heads (Qwen 3). Oracles: the unhooked forward, forward_with_attentions, the model's
own logits."""

from __future__ import annotations

import pytest
import torch

from qkv import interp
from qkv.models import GPT, preset

FAMILIES = ["pythia-tiny", "gemma2-tiny", "qwen3-tiny", "mistral-tiny"]


def build(name: str) -> GPT:
    torch.manual_seed(0)
    config = preset(name, vocab_size=61, n_layer=2, sliding_window=4)
    if name == "pythia-tiny":
        config = preset(name, vocab_size=61, n_layer=2)
    model = GPT(config)
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if param_name.endswith("bias"):
                param.normal_(0.0, 0.05)
    return model.double().eval()


IDS = torch.randint(1, 61, (2, 9), generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("name", FAMILIES)
def test_identity_hooks_and_residual_identities(name: str) -> None:
    model = build(name)
    plain = model(IDS)
    logits, cache = model.run_with_cache(IDS)
    torch.testing.assert_close(logits, plain, rtol=0, atol=1e-10)
    for i in range(model.config.n_layer):
        pre = cache[f"blocks.{i}.hook_resid_pre"]
        attn, mlp = cache[f"blocks.{i}.hook_attn_out"], cache[f"blocks.{i}.hook_mlp_out"]
        post = cache[f"blocks.{i}.hook_resid_post"]
        if model.config.parallel_residual:
            assert f"blocks.{i}.hook_resid_mid" not in cache
            torch.testing.assert_close(post, pre + attn + mlp, rtol=0, atol=1e-10)
        else:
            mid = cache[f"blocks.{i}.hook_resid_mid"]
            torch.testing.assert_close(mid, pre + attn, rtol=0, atol=1e-10)
            torch.testing.assert_close(post, mid + mlp, rtol=0, atol=1e-10)
    kv_heads, d_head = model.config.n_kv_head, model.config.head_dim
    assert cache["blocks.0.attn.hook_k"].shape == (2, 9, kv_heads, d_head)


@pytest.mark.parametrize("name", FAMILIES)
def test_cached_pattern_equals_recorded_attention_with_windows_and_softcap(name: str) -> None:
    model = build(name)
    _, cache = model.run_with_cache(IDS, names_filter=lambda n: n.endswith("hook_pattern"))
    _, attentions = model.forward_with_attentions(IDS)
    for i, weights in enumerate(attentions):
        torch.testing.assert_close(
            cache[f"blocks.{i}.attn.hook_pattern"].to(weights.dtype), weights, atol=1e-7, rtol=0
        )


@pytest.mark.parametrize("name", FAMILIES)
def test_zero_ablation_and_logit_lens(name: str) -> None:
    model = build(name)
    lens = interp.logit_lens(model, IDS)
    torch.testing.assert_close(lens[-1], model(IDS), atol=1e-8, rtol=0)
    ablated = interp.ablate(model, IDS, heads=[(1, 0)])
    by_hand = build(name)
    d = by_hand.config.head_dim
    with torch.no_grad():
        by_hand.transformer["h"][1].attn.c_proj.weight[:, :d] = 0
    torch.testing.assert_close(ablated, by_hand(IDS), atol=1e-8, rtol=0)


def test_head_attribution_refuses_models_whose_logit_is_not_a_sum() -> None:
    with pytest.raises(ValueError, match="soft-capped"):
        interp.head_attribution(build("gemma2-tiny"), IDS, 3)


@pytest.mark.parametrize("name", ["pythia-tiny", "qwen3-tiny"])
def test_head_attribution_sums_to_the_logit_on_families(name: str) -> None:
    model = build(name)
    parts = interp.head_attribution(model, IDS, 5)
    torch.testing.assert_close(parts.heads.sum((0, 1)) + parts.rest, parts.logit, atol=1e-6, rtol=0)
