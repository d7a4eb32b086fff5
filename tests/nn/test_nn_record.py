"""record_attention: complete, ordered records that leave model outputs unchanged."""

import pytest
import torch

from qkv.models import GPT, Bert, preset
from qkv.nn import record_attention


def test_gpt_records_every_layer_in_order_and_outputs_unchanged():
    model = GPT(preset("llama-nano", vocab_size=50)).eval()  # GQA + rotary
    ids = torch.randint(0, 50, (2, 7))
    plain = model(ids)
    with record_attention(model) as records:
        recorded = model(ids)
    torch.testing.assert_close(recorded, plain, atol=1e-5, rtol=1e-5)
    assert [r.layer for r in records] == [0, 1]
    c = model.config
    for record in records:
        assert record.q.shape == (2, c.n_head, 7, c.head_dim)
        assert record.k.shape == record.v.shape == (2, c.n_kv_head, 7, c.head_dim)
        assert record.weights.shape == (2, c.n_head, 7, 7)
        assert record.out.shape == (2, c.n_head, 7, c.head_dim)
        assert record.causal and record.mask is None
        assert record.scale == pytest.approx(c.head_dim**-0.5)
        # The record is self-consistent: out = weights · v (kv heads shared by their groups).
        v = record.v.repeat_interleave(c.n_head // c.n_kv_head, dim=1)
        torch.testing.assert_close(record.weights @ v, record.out, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(record.weights.triu(1), torch.zeros_like(record.weights))
    # Nothing is recorded after the block ends.
    model(ids)
    assert len(records) == 2


def test_recorded_weights_equal_forward_with_attentions():
    model = GPT(preset("gpt-nano", vocab_size=40)).eval()
    ids = torch.randint(0, 40, (1, 9))
    logits, attentions = model.forward_with_attentions(ids)
    torch.testing.assert_close(logits, model(ids), atol=1e-5, rtol=1e-5)
    with record_attention(model) as records:
        model(ids)
    assert len(attentions) == len(records) == 3
    for weights, record in zip(attentions, records):
        torch.testing.assert_close(weights, record.weights)


def test_bert_records_the_padding_mask():
    model = Bert(preset("bert-tiny", vocab_size=40)).eval()
    ids = torch.randint(1, 40, (2, 6))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    plain = model(ids, attention_mask=mask)
    with record_attention(model) as records:
        recorded = model(ids, attention_mask=mask)
    torch.testing.assert_close(recorded, plain, atol=1e-5, rtol=1e-5)
    assert len(records) == 2 and not records[0].causal
    assert records[0].mask.shape == (2, 1, 1, 6)
    assert records[0].weights[1, :, :, 3:].abs().max() == 0  # padded keys get no weight


def test_recording_a_model_without_attention_is_an_error():
    recording = record_attention(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="no qkv.nn.MultiHeadAttention"):
        recording.__enter__()
