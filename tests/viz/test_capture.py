"""capture / capture_weights against oracles: the model's own attentions and a recomputation
from the captured q and k."""

import json
import math

import pytest
import torch
from viz_models import tiny_bert, tiny_gpt, word_tokenizer

from qkv.viz.capture import Capture, capture, capture_ids, capture_weights

TEXT = "the cat sat on the mat . a dog ran"


def recompute(cap: Capture) -> torch.Tensor:
    """softmax(scale · q kᵀ) with the causal mask, from the captured queries and keys."""
    scores = cap.scale * cap.queries.double() @ cap.keys.double().transpose(-1, -2)
    if cap.causal:
        t = scores.shape[-1]
        upper = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(upper, -math.inf)
    return torch.softmax(scores, dim=-1)


@pytest.mark.parametrize("name", ["gpt-nano", "llama-nano"])
def test_causal_capture_matches_model_and_recomputation(name):
    model, tok = tiny_gpt(name), word_tokenizer()
    cap = capture(model, tok, TEXT)
    layers, heads = model.config.n_layer, model.config.n_head
    t = len(TEXT.split()) + 1
    assert cap.weights.shape == (layers, heads, t, t)
    assert cap.queries.shape == cap.keys.shape == (layers, heads, t, model.config.head_dim)
    assert cap.causal
    assert cap.tokens[0] == "<bos>" and cap.special == [True] + [False] * (t - 1)
    assert torch.allclose(cap.weights.sum(-1), torch.ones(layers, heads, t), atol=1e-6)
    assert (torch.triu(cap.weights, diagonal=1) == 0).all()
    assert torch.allclose(cap.weights.double(), recompute(cap), atol=1e-6)
    # Oracle independent of the recorder: the weights the model returns on request.
    ids = torch.tensor([tok.encode(TEXT)])
    _, attentions = model.forward_with_attentions(ids)
    assert torch.allclose(cap.weights, torch.stack([a[0] for a in attentions]), atol=1e-6)
    assert torch.allclose(capture_weights(model, ids), cap.weights)
    # Per-head outputs are weights @ values.
    assert torch.allclose(cap.head_outputs, cap.weights @ cap.values, atol=1e-5)


def test_grouped_query_keys_are_expanded_per_query_head():
    model = tiny_gpt("llama-nano")  # 4 query heads share 2 kv heads
    cap = capture_ids(model, torch.arange(2, 9))
    assert torch.equal(cap.keys[:, 0], cap.keys[:, 1])
    assert torch.equal(cap.values[:, 2], cap.values[:, 3])
    assert not torch.equal(cap.keys[:, 1], cap.keys[:, 2])


def test_bidirectional_bert_capture():
    import qkv

    tok = qkv.load_tokenizer(qkv.io.pretrained_path("all-minilm-l6-v2"))
    model = tiny_bert()
    cap = capture(model, tok, "The cat sat on the mat.")
    assert cap.tokens[0] == "[CLS]" and cap.tokens[-1] == "[SEP]"
    assert cap.special[0] and cap.special[-1] and not any(cap.special[1:-1])
    assert not cap.causal
    assert (torch.triu(cap.weights, diagonal=1) > 0).any()
    assert torch.allclose(cap.weights.double(), recompute(cap), atol=1e-6)
    hidden, attentions = model.forward_with_attentions(
        torch.tensor([tok.encode("The cat sat on the mat.")])
    )
    assert torch.allclose(cap.weights, torch.stack([a[0] for a in attentions]), atol=1e-6)


def test_json_dict_is_plain_and_rounded():
    cap = capture(tiny_gpt(), word_tokenizer(), "the cat sat")
    data = json.loads(json.dumps(cap.to_json_dict()))
    assert data["tokens"] == ["<bos>", "the", "cat", "sat"]
    assert data["num_layers"] == 3 and data["num_heads"] == 3 and data["num_tokens"] == 4
    assert len(data["weights"][2][1][3]) == 4
    assert data["weights"][0][0][0] == [1.0, 0.0, 0.0, 0.0]
    assert abs(data["scale"] - 1 / math.sqrt(16)) < 1e-12


def test_bad_inputs():
    model, tok = tiny_gpt(), word_tokenizer()
    with pytest.raises(ValueError, match="empty"):
        capture(model, tok, "   ")
    with pytest.raises(ValueError, match=r"\[0, 11\)"):
        capture_weights(model, [1, 2, 500])
    with pytest.raises(ValueError, match="64 positions"):
        capture_weights(model, [1] * 65)
    with pytest.raises(ValueError, match="one sequence"):
        capture_weights(model, torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="no qkv.nn.MultiHeadAttention"):
        capture_weights(torch.nn.Linear(2, 2), [1, 2])
    with pytest.raises(ValueError, match="tokens"):
        Capture(
            tokens=["a"],
            special=[False],
            weights=torch.zeros(1, 1, 2, 2),
            queries=torch.zeros(1, 1, 2, 4),
            keys=torch.zeros(1, 1, 2, 4),
            values=torch.zeros(1, 1, 2, 4),
            head_outputs=torch.zeros(1, 1, 2, 4),
            scale=0.5,
            causal=True,
            model_name="x",
        )
