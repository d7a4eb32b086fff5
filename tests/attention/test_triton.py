"""The fused Triton kernels against the float64 reference, forward and backward, under the
Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1 before Triton is imported).

Precision rule (flash-attention's): err(triton) ≤ 2·err(PyTorch in the same dtype) + eps, both
measured against float64. The interpreter's ``tl.dot`` mishandles bfloat16 (numpy has none), so
bf16 runs with the operands upcast inside the kernel (same values, see scores.matmul); fp16
runs exactly the GPU path.
"""

from __future__ import annotations

import pytest
import torch
from test_triton_oracle import assert_precision

import qkv

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy exp2(-inf) chatter

FP16, BF16 = torch.float16, torch.bfloat16


def _inputs(batch, q_heads, kv_heads, q_len, k_len, head_dim, v_dim=None):
    """float64 masters: q (B, Hq, Nq, D), k (B, Hkv, Nk, D), v (B, Hkv, Nk, Dv)."""
    q = torch.randn(batch, q_heads, q_len, head_dim, dtype=torch.float64)
    k = torch.randn(batch, kv_heads, k_len, head_dim, dtype=torch.float64)
    v = torch.randn(batch, kv_heads, k_len, v_dim or head_dim, dtype=torch.float64)
    return q, k, v


# (batch, q_heads, kv_heads, q_len, k_len, head_dim): odd lengths cross 16-row tile edges.
SHAPES = [
    (1, 1, 1, 1, 1, 32),
    (2, 2, 2, 7, 33, 48),
    (1, 2, 2, 33, 7, 64),
    (1, 4, 2, 33, 33, 80),  # GQA, non-power-of-two head dim
    (1, 4, 1, 17, 97, 32),  # MQA
]


@pytest.mark.parametrize("dtype", [FP16, BF16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_plain_matches_reference(shape, dtype):
    assert_precision(*_inputs(*shape), dtype)


@pytest.mark.parametrize("dtype", [FP16, BF16], ids=["fp16", "bf16"])
@pytest.mark.parametrize(
    "shape",
    [(1, 2, 2, 33, 33, 32), (1, 2, 1, 17, 97, 48), (1, 2, 2, 97, 17, 32), (2, 2, 2, 1, 33, 64)],
    ids=lambda s: "x".join(map(str, s)),
)
def test_causal_is_bottom_right_aligned(shape, dtype):
    assert_precision(*_inputs(*shape), dtype, causal=True)


@pytest.mark.parametrize(
    "opts",
    [
        {"window": (8, 0)},
        {"window": (5, 3)},
        {"window": (None, 4)},
        {"window": (6, None), "causal": True},
        {"softcap": 2.0},
        {"alibi_slopes": torch.tensor([0.5, 0.125])},
        {"alibi_slopes": torch.tensor([[0.5, 0.25], [0.1, 0.3]]), "causal": True},
        {"scale": 0.3, "softcap": 4.0, "causal": True},
    ],
    ids=["win8-0", "win5-3", "winR4", "winL6-causal", "softcap", "alibi", "alibi-b-causal", "mix"],
)
def test_variants_fp16(opts):
    assert_precision(*_inputs(2, 2, 1, 40, 47, 32), FP16, **opts)


@pytest.mark.parametrize(
    "opts",
    [
        {"window": (5, 3)},
        {"softcap": 2.0, "causal": True},
        {"alibi_slopes": torch.tensor([0.5, 0.2])},
    ],
    ids=["window", "softcap-causal", "alibi"],
)
def test_variants_bf16(opts):
    assert_precision(*_inputs(1, 2, 2, 33, 40, 48), BF16, **opts)


@pytest.mark.parametrize("dtype", [FP16, BF16], ids=["fp16", "bf16"])
@pytest.mark.parametrize(
    "opts",
    [{"dropout_p": 0.3, "causal": True}, {"dropout_p": 0.1, "softcap": 3.0, "window": (7, 2)}],
    ids=["causal", "softcap-window"],
)
def test_dropout_regenerates_the_reference_mask(opts, dtype):
    """The kernels hash (seed, b, h, i, j) exactly as qkv.attention.dropout does, in the
    forward and again in both backward kernels."""
    assert_precision(*_inputs(2, 4, 2, 33, 40, 32), dtype, **opts)


def _bool_mask():
    mask = torch.rand(2, 1, 33, 40) > 0.4
    mask[0, 0, 3] = False  # a row with no allowed key
    mask[1, 0, :, 16:32] = False  # a wholly masked 16-key tile: skipped via the tile table
    return mask


def _float_mask():
    mask = torch.randn(1, 2, 33, 40)
    mask[0, 1, 5] = float("-inf")
    mask[0, 0, :, :16] = float("-inf")
    return mask


@pytest.mark.parametrize("dtype", [FP16, BF16], ids=["fp16", "bf16"])
@pytest.mark.parametrize(
    "make_opts",
    [
        lambda: {"mask": _bool_mask()},
        lambda: {"mask": _float_mask()},
        lambda: {"mask": _bool_mask(), "causal": True, "softcap": 3.0},
        lambda: {"mask": _float_mask(), "alibi_slopes": torch.tensor([0.3, 0.1])},
        lambda: {"mask": torch.rand(33, 40) > 0.5},  # broadcast over batch and heads
        lambda: {"mask": _bool_mask(), "window": (9, 2)},
    ],
    ids=["bool", "float", "bool-causal-softcap", "float-alibi", "bool-2d", "bool-window"],
)
def test_masks(make_opts, dtype):
    assert_precision(*_inputs(2, 2, 2, 33, 40, 32), dtype, **make_opts())


@pytest.mark.parametrize("causal", [False, True])
def test_padding_mask_as_key_lengths(causal):
    """A (B, 1, 1, Nk) prefix mask — a padded BERT batch — runs as per-sequence key lengths."""
    lengths = torch.tensor([40, 7, 0, 23])
    mask = torch.arange(40)[None, None, None, :] < lengths[:, None, None, None]
    assert_precision(*_inputs(4, 2, 1, 33, 40, 32), FP16, mask=mask, causal=causal)


def test_rows_without_keys_give_zero_output_and_zero_grads():
    q, k, v = (t.to(FP16).requires_grad_() for t in _inputs(1, 2, 2, 20, 20, 32))
    mask = torch.ones(1, 1, 20, 20, dtype=torch.bool)
    mask[..., 4, :] = False
    mask[..., 17, :] = False
    out = qkv.attention(q, k, v, mask=mask, backend="triton")
    assert (out[:, :, [4, 17]] == 0).all()
    (out.float().square().sum()).backward()
    assert (q.grad[:, :, [4, 17]] == 0).all()
    assert torch.isfinite(q.grad).all() and torch.isfinite(k.grad).all()


def test_backward_is_deterministic():
    q, k, v = (t.to(FP16) for t in _inputs(1, 4, 1, 45, 45, 32))
    grad = torch.randn(1, 4, 45, 32, dtype=FP16)

    def grads():
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        out = qkv.attention(*leaves, causal=True, backend="triton")
        return torch.autograd.grad(out, leaves, grad)

    for first, second in zip(grads(), grads()):
        assert torch.equal(first, second)


def test_gqa_equals_repeated_heads():
    """Grouped-query without copies equals MHA with k/v repeated; dK/dV sum over the group."""
    q, k, v = (t.to(FP16) for t in _inputs(1, 4, 2, 33, 33, 32))
    k_rep = k.repeat_interleave(2, dim=1).requires_grad_()
    v_rep = v.repeat_interleave(2, dim=1).requires_grad_()
    k, v = k.requires_grad_(), v.requires_grad_()
    out = qkv.attention(q, k, v, causal=True, backend="triton")
    out_rep = qkv.attention(q, k_rep, v_rep, causal=True, backend="triton")
    assert torch.equal(out, out_rep)
    grad = torch.randn_like(out)
    dk, dv = torch.autograd.grad(out, (k, v), grad)
    dk_rep, dv_rep = torch.autograd.grad(out_rep, (k_rep, v_rep), grad)
    summed = dict(atol=2e-3, rtol=2e-3)  # fp16 roundings of the group's parts
    torch.testing.assert_close(dk.float(), dk_rep.float().view(1, 2, 2, 33, 32).sum(2), **summed)
    torch.testing.assert_close(dv.float(), dv_rep.float().view(1, 2, 2, 33, 32).sum(2), **summed)


def test_strided_inputs():
    """q/k/v as views of a (B, N, H, D) projection (no copy made by the caller)."""
    inputs = _inputs(2, 2, 2, 21, 21, 32)
    q, k, v = (t.to(FP16).transpose(1, 2).contiguous().transpose(1, 2) for t in inputs)
    assert not q.is_contiguous()
    expected = qkv.attention(q.contiguous(), k.contiguous(), v.contiguous(), backend="triton")
    assert torch.equal(qkv.attention(q, k, v, backend="triton"), expected)


def test_float32_in_tf32_mode(monkeypatch):
    from qkv.attention import triton_support

    monkeypatch.setattr(triton_support, "ALLOW_FP32_TF32", True)
    q, k, v = (t.float() for t in _inputs(1, 2, 2, 20, 20, 32))
    out = qkv.attention(q, k, v, causal=True, backend="triton")
    expected = qkv.attention(q, k, v, causal=True, backend="reference")
    torch.testing.assert_close(out, expected, atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize(
    "head_dim",
    [128, pytest.param(256, marks=pytest.mark.slow), pytest.param(96, marks=pytest.mark.slow)],
)
@pytest.mark.parametrize("dtype", [FP16, BF16], ids=["fp16", "bf16"])
def test_large_head_dims(head_dim, dtype):
    assert_precision(*_inputs(1, 2, 1, 65, 97, head_dim), dtype, causal=True, window=(40, 0))


@pytest.mark.slow
def test_longer_sequences_every_option():
    mask = torch.rand(2, 1, 130, 200) > 0.2
    assert_precision(
        *_inputs(2, 4, 2, 130, 200, 64), FP16, mask=mask, causal=True, window=(70, None),
        softcap=10.0, alibi_slopes=torch.tensor([0.2, 0.1, 0.05, 0.025]),
    )  # fmt: skip
