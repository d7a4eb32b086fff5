"""MultiHeadAttention against a plain reimplementation written from the formula."""

import math

import pytest
import torch

from qkv.nn import KVCache, MultiHeadAttention, RotaryEmbedding


def plain_attention(mha: MultiHeadAttention, x, *, key_mask=None, rotary=None):
    """Attention written out with separate projections, explicit head repetition and softmax."""
    batch, length, _ = x.shape
    hq, hkv, d = mha.n_heads, mha.n_kv_heads, mha.head_dim
    weight, bias = mha.c_attn.weight, mha.c_attn.bias
    wq, wk, wv = weight.split((hq * d, hkv * d, hkv * d))
    bq, bk, bv = bias.split((hq * d, hkv * d, hkv * d)) if bias is not None else (None,) * 3
    q = torch.nn.functional.linear(x, wq, bq).view(batch, length, hq, d).transpose(1, 2)
    k = torch.nn.functional.linear(x, wk, bk).view(batch, length, hkv, d).transpose(1, 2)
    v = torch.nn.functional.linear(x, wv, bv).view(batch, length, hkv, d).transpose(1, 2)
    if rotary is not None:
        cos, sin = rotary
        q = q * cos + torch.cat((-q[..., d // 2 :], q[..., : d // 2]), -1) * sin
        k = k * cos + torch.cat((-k[..., d // 2 :], k[..., : d // 2]), -1) * sin
    k = k.repeat_interleave(hq // hkv, dim=1)
    v = v.repeat_interleave(hq // hkv, dim=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    if mha.causal:
        future = torch.ones(length, length, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    weights = scores.softmax(-1)
    out = (weights @ v).transpose(1, 2).reshape(batch, length, hq * d)
    return mha.c_proj(out), weights


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_plain_attention(n_kv_heads, causal, bias):
    mha = MultiHeadAttention(
        hidden_size=32, n_heads=4, n_kv_heads=n_kv_heads, bias=bias, causal=causal
    ).double()
    x = torch.randn(2, 7, 32, dtype=torch.float64)
    y, weights = mha(x, need_weights=True)
    expected, expected_weights = plain_attention(mha, x)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(weights, expected_weights)
    torch.testing.assert_close(mha(x), expected)  # the default (auto) backend agrees


def test_rotary_and_padding_match_plain_attention():
    mha = MultiHeadAttention(hidden_size=48, n_heads=6, n_kv_heads=2, causal=True).double()
    rope = RotaryEmbedding(head_dim=8, max_positions=32)
    x = torch.randn(3, 9, 48, dtype=torch.float64)
    cos, sin = rope(torch.arange(9).expand(3, 9))
    key_mask = torch.ones(3, 9, dtype=torch.bool)
    key_mask[1, :4] = False  # left padding
    key_mask[2, 6:] = False  # right padding
    y = mha(x, mask=key_mask[:, None, None, :], rotary=(cos.double(), sin.double()))
    expected, _ = plain_attention(mha, x, key_mask=key_mask, rotary=(cos, sin))
    real = torch.ones(3, 9, dtype=torch.bool)
    real[1, :4] = False  # rows with no key left are all-padding: compared separately below
    torch.testing.assert_close(y[real], expected[real])
    # A padded query with no visible key attends nothing: its per-head output is 0.
    torch.testing.assert_close(y[1, :4], mha.c_proj.bias.expand(4, 48))


def test_gqa_equals_mha_with_repeated_kv_heads():
    gqa = MultiHeadAttention(hidden_size=32, n_heads=4, n_kv_heads=2, causal=True)
    mha = MultiHeadAttention(hidden_size=32, n_heads=4, n_kv_heads=4, causal=True)
    d = 8
    wq, wk, wv = gqa.c_attn.weight.split((32, 16, 16))
    bq, bk, bv = gqa.c_attn.bias.split((32, 16, 16))

    def repeat(t):  # (2·D, ...) -> (4·D, ...), each kv head serving 2 query heads
        return t.view(2, d, *t.shape[1:]).repeat_interleave(2, dim=0).reshape(4 * d, *t.shape[1:])

    with torch.no_grad():
        mha.c_attn.weight.copy_(torch.cat([wq, repeat(wk), repeat(wv)]))
        mha.c_attn.bias.copy_(torch.cat([bq, repeat(bk), repeat(bv)]))
        mha.c_proj.load_state_dict(gqa.c_proj.state_dict())
    x = torch.randn(2, 5, 32)
    torch.testing.assert_close(gqa(x), mha(x), atol=1e-5, rtol=1e-5)


def test_padding_mask_equals_shorter_sequence():
    mha = MultiHeadAttention(hidden_size=32, n_heads=4)
    x = torch.randn(1, 10, 32)
    key_mask = torch.ones(1, 10, dtype=torch.bool)
    key_mask[:, 6:] = False
    padded = mha(x, mask=key_mask[:, None, None, :])
    torch.testing.assert_close(padded[:, :6], mha(x[:, :6]), atol=1e-5, rtol=1e-5)


def test_cache_steps_equal_full_causal_pass():
    mha = MultiHeadAttention(hidden_size=32, n_heads=4, n_kv_heads=2, causal=True)
    rope = RotaryEmbedding(head_dim=8, max_positions=16)
    x = torch.randn(2, 8, 32)
    full = mha(x, rotary=rope(torch.arange(8).expand(2, 8)))
    cache = KVCache(
        n_layers=1,
        batch_size=2,
        n_kv_heads=2,
        head_dim=8,
        max_len=16,
        dtype=torch.float32,
        device="cpu",
    )
    pieces = []
    for start, stop in ((0, 5), (5, 6), (6, 7), (7, 8)):  # prefill, then one token at a time
        positions = torch.arange(start, stop).expand(2, stop - start)
        pieces.append(mha(x[:, start:stop], rotary=rope(positions), cache=cache.layer(0)))
        cache.advance(stop - start)
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=1e-5)


def test_cache_overflow_is_a_clear_error():
    cache = KVCache(
        n_layers=1,
        batch_size=1,
        n_kv_heads=1,
        head_dim=4,
        max_len=4,
        dtype=torch.float32,
        device="cpu",
    )
    with pytest.raises(ValueError, match="larger max_len"):
        cache.layer(0).update(torch.zeros(1, 1, 5, 4), torch.zeros(1, 1, 5, 4))


def test_backend_is_passed_through_and_bad_names_refused():
    x = torch.randn(1, 4, 16)
    mha = MultiHeadAttention(hidden_size=16, n_heads=2, backend="reference")
    auto = MultiHeadAttention(hidden_size=16, n_heads=2)
    auto.load_state_dict(mha.state_dict())
    torch.testing.assert_close(mha(x), auto(x), atol=1e-5, rtol=1e-5)
    mha.backend = "no-such-backend"
    with pytest.raises(ValueError, match="no-such-backend"):
        mha(x)


def test_dropout_only_in_training():
    mha = MultiHeadAttention(hidden_size=16, n_heads=2, dropout=0.5)
    x = torch.randn(1, 6, 16)
    mha.eval()
    torch.testing.assert_close(mha(x), mha(x))
    mha.train()
    assert not torch.allclose(mha(x), mha(x))


def test_bad_head_counts_are_value_errors():
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        MultiHeadAttention(hidden_size=32, n_heads=4, n_kv_heads=3)
    with pytest.raises(ValueError, match="not divisible"):
        MultiHeadAttention(hidden_size=30, n_heads=4)
