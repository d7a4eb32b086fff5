"""The walkthrough recomputes every step and agrees with the model's own numbers."""

import json
import math

import pytest
import torch
from viz_models import tiny_bert, tiny_gpt, word_tokenizer

from qkv.viz.explain import explain, resolve_token, walk
from qkv.viz.terminal import format_vector

TEXT = "the cat sat on the mat . a dog ran"


@pytest.mark.parametrize("name", ["gpt-nano", "llama-nano"])
@pytest.mark.parametrize("token", [0, 3, -1])
def test_z_matches_model_head_output(name, token):
    model = tiny_gpt(name)
    w = explain(TEXT, model=model, tokenizer=word_tokenizer(), layer=1, head=1, token=token)
    assert w.max_abs_diff <= 1e-5
    assert torch.allclose(w.z, w.model_z, atol=1e-5)
    assert torch.allclose(w.weights, w.model_weights, atol=1e-6)
    assert w.weights_sum == pytest.approx(1.0, abs=1e-9)
    assert w.ok
    # Causal: keys after the query are masked, with weight exactly 0.
    i = w.token_index
    assert not w.allowed[i + 1 :].any() and w.allowed[: i + 1].all()
    assert (w.weights[i + 1 :] == 0).all()
    # Each step follows from the previous one.
    assert torch.allclose(w.dots, w.keys.double() @ w.query.double())
    assert torch.allclose(w.scaled, w.dots * w.scale)
    assert w.scale == pytest.approx(1 / math.sqrt(w.d_k))
    assert w.exp_sum == pytest.approx(float(w.exp.sum()))
    assert torch.allclose(w.weighted_values.sum(0), w.z)


def test_bert_walkthrough_and_token_by_string():
    import qkv

    tok = qkv.load_tokenizer(qkv.io.pretrained_path("all-minilm-l6-v2"))
    w = explain(
        "The cat sat on the mat.", model=tiny_bert(), tokenizer=tok, layer=1, head=0, token="cat"
    )
    assert w.token == "cat" and w.token_index == 2
    assert w.allowed.all() and not w.causal
    assert w.max_abs_diff <= 1e-5 and w.ok


def test_walk_by_hand():
    q = torch.tensor([1.0, 0.0])
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    values = torch.tensor([[1.0], [2.0], [3.0]])
    steps = walk(query=q, keys=keys, values=values, scale=0.5, causal=True, token_index=1)
    assert steps["dots"].tolist() == [1.0, 0.0, 2.0]
    assert steps["allowed"].tolist() == [True, True, False]
    e = [math.exp(0.5), 1.0]
    assert steps["exp_sum"] == pytest.approx(sum(e))
    expected = (e[0] * 1 + e[1] * 2) / sum(e)
    assert float(steps["z"][0]) == pytest.approx(expected)


def test_large_scores_are_shifted_not_overflowed():
    q = torch.tensor([100.0])
    keys = torch.tensor([[10.0], [9.0]])
    steps = walk(query=q, keys=keys, values=torch.eye(2), scale=1.0, causal=False, token_index=0)
    assert steps["shift"] == 1000.0
    assert torch.isfinite(steps["weights"]).all()
    assert float(steps["weights"][0]) == pytest.approx(1 / (1 + math.exp(-100)))


def test_json_has_numbers_and_check():
    w = explain(TEXT, model=tiny_gpt(), tokenizer=word_tokenizer(), layer=0, head=2, token="sat")
    data = json.loads(json.dumps(w.to_json_dict(), allow_nan=False))
    assert data["token"] == "sat" and data["token_index"] == 3
    assert data["scores"][4] is None  # masked key, -inf
    assert data["check"]["ok"] is True
    assert data["check"]["max_abs_diff"] <= 1e-5
    assert len(data["keys"]) == len(data["tokens"]) and len(data["query"]) == data["d_k"]


def test_render_mentions_every_step():
    w = explain(TEXT, model=tiny_gpt(), tokenizer=word_tokenizer(), layer=2, head=0, token=4)
    text = w.render()
    for piece in ("q·k_j", "1/√d_k", "mask", "exp(s_j)", "a_j·v_j", "z = Σ_j", "max |z − model z|"):
        assert piece in text
    assert "\x1b[" not in text
    assert "\x1b[" in w.render(color=True)


def test_resolve_token():
    tokens, special = ["[CLS]", "the", "##cat", "[SEP]"], [True, False, False, True]
    assert resolve_token(None, tokens, special) == 2
    assert resolve_token("cat", tokens, special) == 2
    assert resolve_token("-1", tokens, special) == 3
    assert resolve_token("1", tokens, special) == 1
    with pytest.raises(ValueError, match="not in the input"):
        resolve_token("dog", tokens, special)
    with pytest.raises(ValueError, match="out of range"):
        resolve_token(4, tokens, special)


def test_out_of_range_layer_head_and_empty_text():
    model, tok = tiny_gpt(), word_tokenizer()
    with pytest.raises(ValueError, match="layer 3 is out of range"):
        explain(TEXT, model=model, tokenizer=tok, layer=3)
    with pytest.raises(ValueError, match="head 7 is out of range"):
        explain(TEXT, model=model, tokenizer=tok, head=7)
    with pytest.raises(ValueError, match="token index 40"):
        explain(TEXT, model=model, tokenizer=tok, token=40)
    with pytest.raises(ValueError, match="empty"):
        explain("", model=model, tokenizer=tok)


def test_format_vector():
    assert format_vector(torch.tensor([0.5, -1.0])) == "[0.50, -1.00]"
    long = torch.arange(32.0) / 100
    assert format_vector(long) == "[0.00, 0.01, …, 0.31] (32 dims)"
