"""The shared adapter parts: NameMap conversions invert each other exactly, prefixes, and
errors for maps that cannot invert."""

from __future__ import annotations

import pytest
import torch

from qkv.io.adapter import NameMap, add_prefix, names_from_hf, names_to_hf, strip_prefix
from qkv.io.hf import ADAPTERS
from qkv.models import build, preset

SMALL = {
    "gpt2": ("gpt-nano", False),
    "llama": ("llama-nano", False),
    "bert": ("bert-tiny", True),
}


@pytest.mark.parametrize("model_type", sorted(SMALL))
def test_every_adapter_round_trips_a_state_exactly(model_type: str) -> None:
    name, masked_lm = SMALL[model_type]
    adapter = ADAPTERS[model_type]
    model = build(preset(name, vocab_size=40), masked_lm=masked_lm)
    state = model.state_dict()
    back = adapter.state_from_hf(adapter.state_to_hf(state, model), model.config)
    assert set(back) == set(state)
    for key, tensor in state.items():
        assert torch.equal(back[key], tensor), key


def test_fused_and_transposed_tensors_move_as_the_map_says() -> None:
    names = NameMap(
        hf_layer="blocks.{}.",
        qkv_layer="h.{}.",
        names={"emb.weight": "wte.weight"},
        modules={"norm": "ln_1"},
        fused={"attn.c_attn": ("q", "k", "v")},
        transposed=("mlp.fc",),
    )
    q, k, v = torch.randn(4, 3), torch.randn(2, 3), torch.randn(2, 3)
    fc = torch.randn(3, 5)
    hf = {
        "emb.weight": torch.randn(7, 3),
        "blocks.1.norm.bias": torch.randn(3),
        "blocks.1.q.weight": q,
        "blocks.1.k.weight": k,
        "blocks.1.v.weight": v,
        "blocks.1.mlp.fc.weight": fc,
        "other": torch.randn(1),
    }
    ours = names_from_hf(hf, names)
    assert sorted(ours) == [
        "h.1.attn.c_attn.weight", "h.1.ln_1.bias", "h.1.mlp.fc.weight", "other", "wte.weight",
    ]  # fmt: skip
    assert torch.equal(ours["h.1.attn.c_attn.weight"], torch.cat([q, k, v]))
    assert torch.equal(ours["h.1.mlp.fc.weight"], fc.t())
    again = names_to_hf(ours, names, fused_rows={"attn.c_attn": (4, 2, 2)})
    assert set(again) == set(hf) and all(torch.equal(again[n], hf[n]) for n in hf)
    with pytest.raises(ValueError, match=r"needs fused_rows\['attn.c_attn'\]"):
        names_to_hf(ours, names)


def test_name_maps_must_invert_and_have_layer_templates() -> None:
    with pytest.raises(ValueError, match="maps two HF names to one qkv name"):
        NameMap(hf_layer="l.{}.", qkv_layer="h.{}.", modules={"a": "x", "b": "x"})
    with pytest.raises(ValueError, match="needs one '\\{\\}' for the layer index"):
        NameMap(hf_layer="layers.", qkv_layer="h.{}.")


def test_prefixes() -> None:
    t = torch.zeros(1)
    state = {"h.0.w": t, "transformer.x": t, "lm_head.weight": t}
    assert list(add_prefix(state, "transformer.", except_=("lm_head.",))) == [
        "transformer.h.0.w", "transformer.x", "lm_head.weight",
    ]  # fmt: skip
    assert list(strip_prefix({"bert.a": t, "cls.b": t}, "bert.")) == ["a", "cls.b"]
