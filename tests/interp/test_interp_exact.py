"""qkv.interp against hand-made oracles: manual run_with_hooks patches, a zeroed
out-projection, the model's own logits, on GPT-2-style and Llama-style (GQA, RMSNorm,
rotary) decoders."""

from __future__ import annotations

import copy

import pytest
import torch

from qkv import interp
from qkv.models import GPT, BertForMaskedLM, preset

DECODERS = ["gpt-nano", "llama-nano"]


def build(name: str) -> GPT:
    torch.manual_seed(0)
    model = GPT(preset(name, vocab_size=97))
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if param_name.endswith("bias"):
                param.normal_(0.0, 0.05)
    return model.double().eval()


def prompts() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    clean = torch.randint(1, 97, (2, 9), generator=generator)
    corrupt = torch.randint(1, 97, (2, 9), generator=generator)
    return clean, corrupt


def logit_diff(logits: torch.Tensor) -> torch.Tensor:
    return (logits[:, -1, 5] - logits[:, -1, 7]).mean()


def manual_patch(model, clean, corrupt, name, index):
    """The same patch done by hand: corrupted activation at ``index`` in the clean run."""
    _, cache = model.run_with_cache(corrupt, names_filter=name)

    def put(activation, hook):
        activation = activation.clone()
        activation[index] = cache[name][index]
        return activation

    with torch.no_grad():
        return float(logit_diff(model.run_with_hooks(clean, fwd_hooks=[(name, put)])))


@pytest.mark.parametrize("name", DECODERS)
@pytest.mark.parametrize("hook", ["z", "q", "k", "v", "pattern"])
def test_patch_heads_entry_equals_a_manual_patch(name: str, hook: str) -> None:
    model = build(name)
    clean, corrupt = prompts()
    sweep = interp.patch_heads(model, clean, corrupt, logit_diff, hook=hook, batch_size=5)
    heads = model.config.n_head if hook not in ("k", "v") else model.config.n_kv_head
    assert sweep.shape == (model.config.n_layer, heads)
    hook_name = f"blocks.1.attn.hook_{'pattern' if hook == 'pattern' else hook}"
    index = (slice(None), 1) if hook == "pattern" else (slice(None), slice(None), 1)
    expected = manual_patch(model, clean, corrupt, hook_name, index)
    assert sweep[1, 1].item() == pytest.approx(expected, abs=1e-9)
    assert sweep.std() > 0  # the heads differ


def test_patch_heads_per_position_and_patch_residual() -> None:
    model = build("gpt-nano")
    clean, corrupt = prompts()
    per_position = interp.patch_heads(model, clean, corrupt, logit_diff, per_position=True)
    assert per_position.shape == (3, 3, 9)
    expected = manual_patch(model, clean, corrupt, "blocks.2.attn.hook_z", (slice(None), 4, 0))
    assert per_position[2, 0, 4].item() == pytest.approx(expected, abs=1e-9)
    for hook in ("resid_pre", "attn_out", "mlp_out"):
        residual = interp.patch_residual(model, clean, corrupt, logit_diff, hook=hook)
        assert residual.shape == (3, 9)
        expected = manual_patch(model, clean, corrupt, f"blocks.1.hook_{hook}", (slice(None), 8))
        assert residual[1, 8].item() == pytest.approx(expected, abs=1e-9)


def test_gqa_key_value_patch_says_which_query_heads_it_moves() -> None:
    model = build("llama-nano")  # 4 query heads, 2 key/value heads
    assert interp.query_heads_moved(model, 0) == [0, 1]
    assert interp.query_heads_moved(model, 1) == [2, 3]
    with pytest.raises(ValueError, match="key/value heads"):
        interp.query_heads_moved(model, 2)


@pytest.mark.parametrize("name", DECODERS)
def test_ablate_zero_and_mean(name: str) -> None:
    model = build(name)
    clean, corrupt = prompts()
    d_head = model.config.head_dim
    ablated = interp.ablate(model, clean, heads=[(0, 1), (1, 3 % model.config.n_head)])
    edited = copy.deepcopy(model)
    with torch.no_grad():
        for layer, head in [(0, 1), (1, 3 % model.config.n_head)]:
            weight = edited.transformer["h"][layer].attn.c_proj.weight
            weight[:, head * d_head : (head + 1) * d_head] = 0.0
    torch.testing.assert_close(ablated, edited(clean), rtol=0, atol=1e-10)
    # Mean ablation: the head's slice of the out-projection applied to its mean z, as a bias.
    means = interp.mean_z(model, corrupt)
    mean_ablated = interp.ablate(model, clean, heads=[(1, 0)], how="mean", reference_ids=corrupt)
    with torch.no_grad():
        projection = edited_mean = copy.deepcopy(model)
        attn = projection.transformer["h"][1].attn
        shift = attn.c_proj.weight[:, :d_head] @ means[1][0]
        attn.c_proj.weight[:, :d_head] = 0.0
        if attn.c_proj.bias is None:
            attn.c_proj.bias = torch.nn.Parameter(torch.zeros_like(shift))
        attn.c_proj.bias += shift
    torch.testing.assert_close(mean_ablated, edited_mean(clean), rtol=0, atol=1e-10)


def test_ablation_effects_match_one_head_at_a_time() -> None:
    model = build("gpt-nano")
    clean, _ = prompts()
    effects = interp.ablation_effects(model, clean, batch_size=4)
    loss = interp.next_token_loss(clean)
    with torch.no_grad():
        base = float(loss(model(clean)))
    for layer, head in [(0, 0), (2, 1)]:
        alone = float(loss(interp.ablate(model, clean, heads=[(layer, head)])))
        assert effects[layer, head].item() == pytest.approx(alone - base, abs=1e-9)


@pytest.mark.parametrize("name", DECODERS)
def test_logit_lens_last_row_is_the_logits_and_rows_recompute_the_norm(name: str) -> None:
    model = build(name)
    clean, _ = prompts()
    lens = interp.logit_lens(model, clean)
    assert lens.shape == (model.config.n_layer + 1, 2, 9, 97)
    torch.testing.assert_close(lens[-1], model(clean), rtol=0, atol=1e-10)
    # Row 1 by hand: resid_pre of layer 1, normalised by its own statistics.
    _, cache = model.run_with_cache(clean, names_filter="blocks.1.hook_resid_pre")
    by_hand = model.lm_head(model.transformer["ln_f"](cache["blocks.1.hook_resid_pre"]))
    torch.testing.assert_close(lens[1], by_hand, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", DECODERS)
def test_head_attribution_parts_sum_to_the_logit(name: str) -> None:
    model = build(name)
    clean, _ = prompts()
    parts = interp.head_attribution(model, clean, 5)
    assert parts.heads.shape == (model.config.n_layer, model.config.n_head, 2, 9)
    torch.testing.assert_close(parts.logit, model(clean)[..., 5], rtol=0, atol=1e-10)
    # RMSNorm normalises in float32 even for a float64 model (as transformers does): its
    # rounding is the tolerance there.
    atol = 1e-9 if name == "gpt-nano" else 1e-6
    torch.testing.assert_close(parts.heads.sum((0, 1)) + parts.rest, parts.logit, rtol=0, atol=atol)
    assert "frozen" in parts.note
    tokens = torch.randint(0, 97, clean.shape)
    per_token = interp.head_attribution(model, clean, tokens)
    expected = model(clean).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(per_token.heads.sum((0, 1)) + per_token.rest, expected)


def test_bad_inputs_are_clear_errors() -> None:
    model = build("gpt-nano")
    clean, corrupt = prompts()
    with pytest.raises(ValueError, match="same shape"):
        interp.patch_heads(model, clean, corrupt[:, :5], logit_diff)
    with pytest.raises(ValueError, match="out of range: the model has 3 layers"):
        interp.ablate(model, clean, heads=[(3, 0)])
    with pytest.raises(ValueError, match="reference_ids"):
        interp.ablate(model, clean, heads=[(0, 0)], how="mean")
    with pytest.raises(ValueError, match="one number"):
        interp.patch_heads(model, clean, corrupt, lambda logits: logits[:, -1, 0])
    with pytest.raises(ValueError, match="hook must be one of"):
        interp.patch_heads(model, clean, corrupt, logit_diff, hook="out")
    bert = BertForMaskedLM(preset("bert-tiny", vocab_size=97)).eval()
    with pytest.raises(ValueError, match="qkv decoder"):
        interp.logit_lens(bert, clean)
    # Encoders still patch: the metric reads the MLM logits.
    assert interp.patch_heads(bert, clean, corrupt, logit_diff).shape == (2, 2)
