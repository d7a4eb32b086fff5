"""BERT: padding, pooling, the packed path and the masked-LM head."""

import pytest
import torch

from qkv.models import Bert, BertForMaskedLM, masked_lm_loss, preset
from qkv.nn.packing import PackedSequences


@pytest.fixture
def config():
    return preset("bert-tiny", vocab_size=70)


def test_padded_batch_equals_each_sentence_alone(config):
    model = Bert(config).eval()
    a = torch.randint(1, 70, (1, 4))
    b = torch.randint(1, 70, (1, 7))
    ids = torch.cat([torch.cat([a, torch.zeros(1, 3, dtype=torch.long)], 1), b])  # right pad
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0], [1] * 7])
    hidden = model(ids, attention_mask=mask)
    torch.testing.assert_close(hidden[0, :4], model(a)[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(hidden[1], model(b)[0], atol=1e-5, rtol=1e-4)
    pooled = Bert.pool(hidden, mask, how="mean")
    torch.testing.assert_close(pooled[0], model(a)[0].mean(0), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(Bert.pool(hidden, mask, how="cls"), hidden[:, 0])
    with pytest.raises(ValueError, match="'mean' or 'cls'"):
        Bert.pool(hidden, mask, how="max")


def test_token_types_change_the_output(config):
    model = Bert(config).eval()
    ids = torch.randint(1, 70, (1, 5))
    types = torch.tensor([[0, 0, 1, 1, 1]])
    assert not torch.allclose(model(ids), model(ids, token_type_ids=types))
    torch.testing.assert_close(model(ids), model(ids, token_type_ids=torch.zeros_like(ids)))


def test_masked_lm_loss_and_tied_decoder(config):
    model = BertForMaskedLM(config).eval()
    ids = torch.randint(1, 70, (2, 6))
    labels = torch.full_like(ids, -100)
    labels[:, 2] = ids[:, 2]
    logits = model(ids)
    assert logits.shape == (2, 6, 70)
    loss = masked_lm_loss(logits, labels)
    expected = -logits[:, 2].log_softmax(-1).gather(-1, ids[:, 2:3]).mean()  # masked: column 2
    torch.testing.assert_close(loss, expected)
    with pytest.raises(ValueError, match="labels must have shape"):
        masked_lm_loss(logits, labels[:, :3])
    head = model.cls.predictions
    assert head.decoder.weight is model.bert.embeddings.word_embeddings.weight
    names = set(model.state_dict())
    for name in (
        "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.LayerNorm.weight",
        "bert.layers.0.attn.c_attn.weight",
        "cls.predictions.transform.dense.weight",
        "cls.predictions.transform.LayerNorm.bias",
        "cls.predictions.decoder.bias",
    ):
        assert name in names, name


def test_forward_with_attentions_and_errors(config):
    model = Bert(config).eval()
    ids = torch.randint(1, 70, (2, 5))
    hidden, attentions = model.forward_with_attentions(ids)
    torch.testing.assert_close(hidden, model(ids), atol=1e-5, rtol=1e-5)
    assert len(attentions) == 2 and attentions[0].shape == (2, 2, 5, 5)
    with pytest.raises(ValueError, match=r"return_attentions=.*hidden, attentions = model"):
        model(ids, return_attentions=True)
    with pytest.raises(ValueError, match="exceeds the model's n_positions=512"):
        model(torch.ones(1, 513, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_mask must have the shape"):
        model(ids, attention_mask=torch.ones(2, 4))


def test_masked_lm_forward_returns_logits_and_refuses_the_moved_arguments(config):
    model = BertForMaskedLM(config).eval()
    ids = torch.randint(1, 70, (2, 5))
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    logits, attentions = model.forward_with_attentions(ids, mask)
    torch.testing.assert_close(logits, model(ids, mask), atol=1e-5, rtol=1e-5)
    assert len(attentions) == 2 and attentions[0][1, :, :, 3:].abs().max() == 0
    with pytest.raises(ValueError, match=r"no longer takes labels=.*masked_lm_loss\("):
        model(ids, labels=ids)
    with pytest.raises(ValueError, match=r"return_attentions=.*logits, attentions = model"):
        model(ids, return_attentions=True)


@pytest.mark.parametrize("lengths", [[1, 7, 7, 3, 12], [4, 4, 4], [5, 0, 2]])
def test_forward_packed_equals_the_padded_forward(config, lengths):
    """The oracle: Bert.forward on the right-padded batch with its attention mask."""
    model = Bert(config).eval()
    packing = PackedSequences.from_lengths(lengths)
    ids = torch.randint(1, 70, (sum(lengths),))
    types = torch.randint(0, 2, (sum(lengths),))
    width = max(lengths)
    padded = torch.zeros(len(lengths), width, dtype=torch.long)
    padded_types = torch.zeros_like(padded)
    mask = torch.zeros_like(padded)
    for row, (start, n) in enumerate(zip(packing.starts.tolist(), lengths)):
        padded[row, :n] = ids[start : start + n]
        padded_types[row, :n] = types[start : start + n]
        mask[row, :n] = 1
    with torch.no_grad():
        expected = model(padded, mask, padded_types)[mask.bool()]  # (N, C), packed order
        packed = model.forward_packed(ids, packing, token_type_ids=types)
    assert packed.shape == (sum(lengths), config.n_embd)
    torch.testing.assert_close(packed, expected, atol=1e-5, rtol=1e-4)


def test_forward_packed_errors(config):
    model = Bert(config).eval()
    packing = PackedSequences.from_lengths([2, 3])
    with pytest.raises(ValueError, match="holds 4 tokens but packing describes 5"):
        model.forward_packed(torch.ones(4, dtype=torch.long), packing)
    with pytest.raises(ValueError, match="1-D integer tensor of packed tokens"):
        model.forward_packed(torch.ones(1, 5, dtype=torch.long), packing)
    with pytest.raises(ValueError, match="exceeds the model's n_positions=512"):
        model.forward_packed(torch.ones(513, dtype=torch.long), PackedSequences.from_lengths([513]))
