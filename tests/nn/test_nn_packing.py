"""Packed sequences: pad/unpad are exact inverses, and packed attention equals each sequence
attended alone (the oracle), causal or not, with grouped-query heads."""

import pytest
import torch

from qkv.nn import MultiHeadAttention, record_attention
from qkv.nn.packing import PackedSequences


@pytest.mark.parametrize("lengths", [[3, 1, 4], [2, 2], [0, 3]])
def test_pad_then_unpad_is_the_identity_and_padding_is_zero(lengths):
    packing = PackedSequences.from_lengths(lengths)
    x = torch.randn(sum(lengths), 5)
    padded = packing.pad(x)
    assert padded.shape == (len(lengths), max(lengths), 5)
    torch.testing.assert_close(packing.unpad(padded), x, rtol=0, atol=0)
    for row, (start, n) in enumerate(zip(packing.starts.tolist(), lengths)):
        torch.testing.assert_close(padded[row, :n], x[start : start + n], rtol=0, atol=0)
        assert padded[row, n:].abs().sum() == 0
    uniform = len(set(lengths)) == 1
    assert (packing.key_mask is None) == uniform == (packing.slots is None)


def test_layout_fields():
    packing = PackedSequences.from_lengths([3, 1])
    assert packing.positions.tolist() == [0, 1, 2, 0]
    assert packing.rows.tolist() == [0, 0, 0, 1]
    assert packing.starts.tolist() == [0, 3]
    assert packing.total == 4 and packing.batch_size == 2 and packing.width == 3
    assert packing.key_mask.squeeze().tolist() == [[True, True, True], [True, False, False]]
    with pytest.raises(ValueError, match="token counts ≥ 0"):
        PackedSequences.from_lengths([2, -1])


@pytest.mark.parametrize("causal", [False, True])
def test_packed_attention_equals_each_sequence_alone(causal):
    mha = MultiHeadAttention(hidden_size=24, n_heads=4, n_kv_heads=2, causal=causal).eval()
    lengths = [5, 1, 3]
    packing = PackedSequences.from_lengths(lengths)
    x = torch.randn(sum(lengths), 24)
    with torch.no_grad():
        packed = mha.forward_packed(x, packing)
        expected = torch.cat(
            [mha(x[s : s + n][None])[0] for s, n in zip(packing.starts.tolist(), lengths)]
        )
    torch.testing.assert_close(packed, expected, atol=1e-5, rtol=1e-4)


def test_packed_attention_refuses_to_run_unrecorded():
    mha = MultiHeadAttention(hidden_size=8, n_heads=2)
    with record_attention(mha), pytest.raises(ValueError, match="does not see packed"):
        mha.forward_packed(torch.randn(3, 8), PackedSequences.from_lengths([3]))
