"""``varlen_attention`` (packed variable-length sequences) against the float64 reference run
sequence by sequence, under the Triton interpreter."""

from __future__ import annotations

import pytest
import torch
from test_triton_oracle import assert_precision_of, lowp_attention

import qkv
from qkv.attention import varlen_attention

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _cu(lengths: list[int]) -> torch.Tensor:
    return torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)


def _per_sequence(attend, q_lengths, k_lengths):
    """Apply a padded-layout attention (1, H, L, D) to each packed sequence and re-pack."""

    def run(q, k, v):
        outs, qs, ks = [], 0, 0
        for lq, lk in zip(q_lengths, k_lengths):
            q_b = q[qs : qs + lq].transpose(0, 1).unsqueeze(0)  # (1, Hq, Lq, D)
            k_b = k[ks : ks + lk].transpose(0, 1).unsqueeze(0)  # (1, Hkv, Lk, D)
            v_b = v[ks : ks + lk].transpose(0, 1).unsqueeze(0)
            if lq == 0:
                pass
            elif lk == 0:  # no keys at all: zeros (that still depend on q for autograd)
                outs.append((q[qs : qs + lq, :, :1] * 0).expand(lq, q.shape[1], v.shape[-1]))
            else:
                outs.append(attend(q_b, k_b, v_b)[0].transpose(0, 1))  # (Lq, Hq, Dv)
            qs, ks = qs + lq, ks + lk
        return torch.cat(outs, dim=0)

    return run


@pytest.mark.parametrize(
    "opts",
    [{}, {"causal": True}, {"window": (4, 2)}, {"softcap": 3.0, "causal": True}],
    ids=["plain", "causal", "window", "softcap-causal"],
)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_varlen_matches_per_sequence_reference(opts, dtype):
    q_lengths, k_lengths = [1, 17, 0, 33, 9], [5, 17, 0, 40, 0]
    heads, kv_heads, head_dim = 4, 2, 48
    q = torch.randn(sum(q_lengths), heads, head_dim, dtype=torch.float64)
    k = torch.randn(sum(k_lengths), kv_heads, head_dim, dtype=torch.float64)
    v = torch.randn(sum(k_lengths), kv_heads, head_dim, dtype=torch.float64)
    cu_q, cu_k = _cu(q_lengths), _cu(k_lengths)
    assert_precision_of(
        q,
        k,
        v,
        dtype,
        fast=lambda a, b, c: varlen_attention(a, b, c, cu_q, cu_k, **opts),
        exact=_per_sequence(
            lambda a, b, c: qkv.attention(a, b, c, backend="reference", **opts),
            q_lengths,
            k_lengths,
        ),
        lowp=_per_sequence(lambda a, b, c: lowp_attention(a, b, c, **opts), q_lengths, k_lengths),
    )


def test_varlen_self_attention_with_alibi():
    lengths = [23, 3, 16]
    slopes = torch.tensor([0.5, 0.25])
    q, k, v = (torch.randn(sum(lengths), 2, 32, dtype=torch.float64) for _ in range(3))
    cu = _cu(lengths)
    assert_precision_of(
        q,
        k,
        v,
        torch.float16,
        fast=lambda a, b, c: varlen_attention(a, b, c, cu, causal=True, alibi_slopes=slopes),
        exact=_per_sequence(
            lambda a, b, c: qkv.attention(
                a, b, c, backend="reference", causal=True, alibi_slopes=slopes
            ),
            lengths,
            lengths,
        ),
        lowp=_per_sequence(
            lambda a, b, c: lowp_attention(a, b, c, causal=True, alibi_slopes=slopes),
            lengths,
            lengths,
        ),
    )


def test_varlen_equals_padded_batch_with_padding_mask():
    """Packing and padding are two layouts of one BERT batch: identical outputs on real tokens."""
    lengths = [19, 7, 32]
    q, k, v = (torch.randn(sum(lengths), 2, 32).half() for _ in range(3))
    packed = varlen_attention(q, k, v, _cu(lengths))
    padded = torch.zeros(3, 3, 32, 2, 32, dtype=torch.float16)  # (tensor, B, N, H, D)
    for b, (start, n) in enumerate(zip(_cu(lengths)[:-1].tolist(), lengths)):
        for i, t in enumerate((q, k, v)):
            padded[i, b, :n] = t[start : start + n]
    mask = torch.arange(32)[None, None, None, :] < torch.tensor(lengths)[:, None, None, None]
    qp, kp, vp = (padded[i].transpose(1, 2) for i in range(3))  # (B, H, N, D)
    out = qkv.attention(qp, kp, vp, mask=mask, backend="triton").transpose(1, 2)  # (B, N, H, D)
    for b, (start, n) in enumerate(zip(_cu(lengths)[:-1].tolist(), lengths)):
        torch.testing.assert_close(out[b, :n], packed[start : start + n], atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cu_seqlens_q": torch.tensor([1, 5], dtype=torch.int32)}, "must start at 0"),
        ({"cu_seqlens_q": torch.tensor([0, 6, 5], dtype=torch.int32)}, "never decrease"),
        ({"cu_seqlens_q": torch.tensor([0, 4], dtype=torch.int32)}, "last entry must equal"),
        ({"cu_seqlens_q": torch.tensor([0.0, 5.0])}, "must hold integers"),
        ({"window": (3,)}, "window must be a (left, right) pair"),
        ({"softcap": -1.0}, "softcap must be a positive number"),
        ({"alibi_slopes": torch.ones(3)}, "alibi_slopes must have shape"),
    ],
)
def test_varlen_rejects_bad_arguments(kwargs, message):
    q = torch.randn(5, 2, 32, dtype=torch.float16)
    args = {"cu_seqlens_q": torch.tensor([0, 2, 5], dtype=torch.int32), **kwargs}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        varlen_attention(q, q, q, **args)


def test_varlen_rejects_wrong_layout_and_dtype():
    cu = torch.tensor([0, 5], dtype=torch.int32)
    with pytest.raises(ValueError, match="packed \\(total_len, heads, head_dim\\)"):
        varlen_attention(*(torch.randn(1, 5, 2, 32).half() for _ in range(3)), cu)
    with pytest.raises(ValueError, match="float32 inputs are refused"):
        varlen_attention(*(torch.randn(5, 2, 32) for _ in range(3)), cu)
