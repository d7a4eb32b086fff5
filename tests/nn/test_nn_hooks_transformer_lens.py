"""External oracle: the same random GPT-2 weights in TransformerLens (4.x TransformerBridge
around transformers' GPT2LMHeadModel, no weight processing) give the same cached
activations under the same hook names."""

from __future__ import annotations

import pytest
import torch

from qkv.models import GPT, GPTConfig

transformers = pytest.importorskip("transformers")
try:
    from transformer_lens.model_bridge.sources import build_bridge_from_module
except Exception as error:  # noqa: BLE001 - any import failure means no oracle here
    pytest.skip(f"transformer_lens cannot import: {error}", allow_module_level=True)

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
SHARED = (
    "hook_embed",
    "hook_pos_embed",
    "ln_final.hook_normalized",
    "blocks.{i}.hook_resid_pre",
    "blocks.{i}.hook_resid_mid",
    "blocks.{i}.hook_resid_post",
    "blocks.{i}.hook_attn_out",
    "blocks.{i}.hook_mlp_out",
    "blocks.{i}.attn.hook_q",
    "blocks.{i}.attn.hook_k",
    "blocks.{i}.attn.hook_v",
    "blocks.{i}.attn.hook_attn_scores",
    "blocks.{i}.attn.hook_pattern",
    "blocks.{i}.attn.hook_z",
    "blocks.{i}.attn.hook_result",
)


def test_run_with_cache_matches_transformer_lens() -> None:
    hf_config = transformers.GPT2Config(
        vocab_size=99, n_positions=64, n_embd=32, n_layer=2, n_head=4,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    with torch.no_grad():  # non-zero biases so that every bias path is compared
        for name, param in hf.named_parameters():
            if name.endswith("bias"):
                param.normal_(0.0, 0.05)
    ours = GPT(GPTConfig(vocab_size=99, n_positions=64, n_embd=32, n_layer=2, n_head=4)).eval()
    state = {
        name: tensor.t() if name.endswith(CONV1D) else tensor
        for name, tensor in hf.state_dict().items()
        if not name.endswith((".attn.bias", ".attn.masked_bias"))
    }
    ours.load_state_dict(state)
    ids = torch.randint(0, 99, (2, 9), generator=torch.Generator().manual_seed(3))
    logits, cache = ours.run_with_cache(ids)

    bridge = build_bridge_from_module(hf, "GPT2LMHeadModel", hf_config=hf_config)
    bridge.set_use_attn_result(True)
    tl_logits, tl_cache = bridge.run_with_cache(ids)
    torch.testing.assert_close(logits, tl_logits, rtol=0, atol=1e-5)
    compared = 0
    for template in SHARED:
        for index in range(2):
            name = template.format(i=index)
            ours_value, theirs = cache[name], tl_cache[name]
            assert ours_value.shape == theirs.shape, name
            if name.endswith("hook_attn_scores"):  # masked entries: -inf here, a large
                allowed = torch.isfinite(ours_value)  # negative number or -inf there
                ours_value, theirs = ours_value[allowed], theirs[allowed]
            torch.testing.assert_close(ours_value, theirs, rtol=0, atol=1e-5, msg=name)
            compared += 1
    assert compared == 2 * len(SHARED)
