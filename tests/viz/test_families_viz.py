"""record_attention, explain and heads on every decoder family's tiny preset: the step-by-step
walk (window, soft-cap, GQA group) reproduces the model's own head output."""

from __future__ import annotations

import pytest
import torch

import qkv
from qkv.models import GPT, preset
from qkv.nn import record_attention

FAMILY_PRESETS = [
    "llama3-tiny", "smollm2-tiny", "mistral-tiny", "qwen2-tiny", "qwen3-tiny",
    "gemma2-tiny", "gemma3-tiny", "phi3-tiny", "pythia-tiny",
]  # fmt: skip


@pytest.mark.parametrize("name", FAMILY_PRESETS)
def test_walk_reproduces_every_family(name: str) -> None:
    from qkv.viz.explain import mask_row, walk

    torch.manual_seed(0)
    config = preset(name, vocab_size=50, sliding_window=6, initializer_range=0.3)
    model = GPT(config).eval()
    ids = torch.randint(0, 50, (1, 14))
    with torch.no_grad(), record_attention(model) as records:
        model(ids)
    assert len(records) == config.n_layer
    for rec in records:
        hq, hkv = rec.q.shape[1], rec.k.shape[1]
        head, index = hq - 1, ids.shape[1] - 1
        bias, allowed = mask_row(rec.mask, head, index, rec.k.shape[2])
        steps = walk(
            query=rec.q[0, head, index], keys=rec.k[0, head // (hq // hkv)],
            values=rec.v[0, head // (hq // hkv)], scale=rec.scale, causal=rec.causal,
            token_index=index, bias=bias, allowed=allowed, window=rec.window,
            softcap=rec.softcap,
        )  # fmt: skip
        torch.testing.assert_close(steps["z"].float(), rec.out[0, head, index], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["gemma2-tiny", "qwen3-tiny", "pythia-tiny"])
def test_explain_show_heads_cli_on_family_presets(name: str, tmp_path, capsys) -> None:
    import json

    from viz_models import tiny_gpt, word_tokenizer

    from qkv.cli.main import main

    model = tiny_gpt(name, sliding_window=3, initializer_range=0.3)
    qkv.save(model, tmp_path / "m", tokenizer=word_tokenizer())
    text = "the cat sat on the mat"
    model_dir = str(tmp_path / "m")
    assert (
        main(["explain", text, "--model", model_dir, "--layer", "0", "--head", "3", "--json"]) == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["check"]["ok"] is True  # the walk (window, soft-cap) matches the model
    assert data["kv_head"] == 3 // (4 // model.config.n_kv_head)
    assert main(["explain", text, "--model", model_dir, "--head", "3", "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert ("shares key/value head" in out) == (model.config.n_kv_head < 4)
    assert main(["show", text, "--model", model_dir, "--out", str(tmp_path / "v.html")]) == 0
    assert "<html" in (tmp_path / "v.html").read_text("utf-8").lower()
    capsys.readouterr()
    args = ["heads", "--model", model_dir, "--json", "--period", "4", "--sequences", "1"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["num_heads"] == 4


@pytest.mark.parametrize("name", ["qwen2-tiny", "gemma2-tiny", "pythia-tiny"])
def test_capture_keeps_the_key_value_head_count(name: str) -> None:
    """The viewer's payload says how many key/value heads the model has and which one each
    query head reads, from the recorded (unexpanded) keys."""
    from qkv.viz.capture import capture_ids
    from qkv.viz.html import payload

    torch.manual_seed(0)
    config = preset(name, vocab_size=50)
    model = GPT(config).eval()
    cap = capture_ids(model, torch.randint(0, 50, (9,)))
    assert cap.kv_heads == config.n_kv_head and cap.num_heads == config.n_head
    assert payload(cap)["num_kv_heads"] == config.n_kv_head
    assert cap.to_json_dict()["num_kv_heads"] == config.n_kv_head
    with torch.no_grad(), record_attention(model) as records:
        model(torch.randint(0, 50, (1, 9)))
    hq, hkv = records[0].q.shape[1], records[0].k.shape[1]
    assert [cap.kv_head_of(h) for h in range(hq)] == [h // (hq // hkv) for h in range(hq)]
