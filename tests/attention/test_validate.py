"""Every bad input of ``qkv.attention`` is a ValueError naming the value and what was expected."""

from __future__ import annotations

import pytest
import torch

import qkv

q4 = lambda *shape, **kw: torch.randn(*shape, **kw)  # noqa: E731


def _qkv(b=2, h=4, hk=2, n=5, m=6, d=8):
    return q4(b, h, n, d), q4(b, hk, m, d), q4(b, hk, m, d)


BAD_CALLS = [
    ("rank", lambda q, k, v: qkv.attention(q[0], k, v), "rank 4"),
    ("rank_k", lambda q, k, v: qkv.attention(q, k.unsqueeze(0), v), "rank 4"),
    ("not_tensor", lambda q, k, v: qkv.attention(q.tolist(), k, v), "torch.Tensor"),
    ("int_dtype", lambda q, k, v: qkv.attention(q.long(), k, v), "floating-point"),
    ("batch", lambda q, k, v: qkv.attention(q, k[:1], v[:1]), "batch sizes differ"),
    ("head_dim", lambda q, k, v: qkv.attention(q, k[..., :4], v), "head_dim differ"),
    ("kv_heads", lambda q, k, v: qkv.attention(q, k, v[:, :1]), "head counts differ"),
    ("kv_len", lambda q, k, v: qkv.attention(q, k, v[:, :, :3]), "sequence lengths differ"),
    ("dtype", lambda q, k, v: qkv.attention(q, k.double(), v), "share one dtype"),
    (
        "device",
        lambda q, k, v: qkv.attention(q, k.to("meta"), v),
        "one device",
    ),
    (
        "groups",
        lambda q, k, v: qkv.attention(q, torch.cat([k, k[:, :1]], 1), torch.cat([v, v[:, :1]], 1)),
        "multiple",
    ),
    (
        "mask_shape",
        lambda q, k, v: qkv.attention(q, k, v, mask=torch.ones(5, 5, dtype=torch.bool)),
        "does not broadcast",
    ),
    (
        "mask_rank",
        lambda q, k, v: qkv.attention(q, k, v, mask=torch.ones(1, 1, 1, 5, 6) > 0),
        "at most 4 dims",
    ),
    (
        "mask_dtype",
        lambda q, k, v: qkv.attention(q, k, v, mask=torch.ones(5, 6, dtype=torch.int64)),
        "bool",
    ),
    (
        "mask_float_dtype",
        lambda q, k, v: qkv.attention(q, k, v, mask=torch.zeros(5, 6).double()),
        "match q's dtype",
    ),
    ("mask_type", lambda q, k, v: qkv.attention(q, k, v, mask=[[True]]), "torch.Tensor"),
    ("window_negative", lambda q, k, v: qkv.attention(q, k, v, window=(-1, 0)), ">= 0"),
    ("window_pair", lambda q, k, v: qkv.attention(q, k, v, window=(1, 2, 3)), "(left, right)"),
    ("window_float", lambda q, k, v: qkv.attention(q, k, v, window=(1.5, 2)), "int or None"),
    ("dropout_one", lambda q, k, v: qkv.attention(q, k, v, dropout_p=1.0), "[0, 1)"),
    ("dropout_negative", lambda q, k, v: qkv.attention(q, k, v, dropout_p=-0.1), "[0, 1)"),
    ("softcap_zero", lambda q, k, v: qkv.attention(q, k, v, softcap=0.0), "positive"),
    ("softcap_negative", lambda q, k, v: qkv.attention(q, k, v, softcap=-2.0), "positive"),
    (
        "slopes_shape",
        lambda q, k, v: qkv.attention(q, k, v, alibi_slopes=torch.ones(3)),
        "alibi_slopes must have shape",
    ),
    (
        "slopes_batch",
        lambda q, k, v: qkv.attention(q, k, v, alibi_slopes=torch.ones(3, 4)),
        "alibi_slopes must have shape",
    ),
    (
        "slopes_int",
        lambda q, k, v: qkv.attention(q, k, v, alibi_slopes=torch.ones(4).long()),
        "floating point",
    ),
    ("scale_nan", lambda q, k, v: qkv.attention(q, k, v, scale=float("nan")), "finite"),
    (
        "backend_unknown",
        lambda q, k, v: qkv.attention(q, k, v, backend="nope"),
        "unknown attention backend",
    ),
]


@pytest.mark.parametrize(("name", "call", "message"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_raises_value_error(name, call, message) -> None:
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=None) as info:
        call(q, k, v)
    assert message in str(info.value), str(info.value)


def test_named_backend_that_cannot_serve_raises_with_reason() -> None:
    q, k, v = _qkv(hk=4)
    with pytest.raises(ValueError, match="softcap") as info:
        qkv.attention(q, k, v, softcap=3.0, backend="sdpa")
    assert "cannot serve" in str(info.value) and "backend='auto'" in str(info.value)
    with pytest.raises(ValueError, match="need_weights"):
        qkv.attention_with_weights(q, k, v, backend="sdpa")


def test_attention_refuses_need_weights_and_points_to_attention_with_weights() -> None:
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="call qkv.attention_with_weights"):
        qkv.attention(q, k, v, need_weights=True)
    out, weights = qkv.attention_with_weights(q, k, v, causal=True)
    assert weights.shape == (*q.shape[:3], k.shape[2])  # (B, Hq, Nq, Nk)
    groups = q.shape[1] // k.shape[1]
    torch.testing.assert_close(out, weights @ v.repeat_interleave(groups, dim=1))
    torch.testing.assert_close(out, qkv.attention(q, k, v, causal=True))
