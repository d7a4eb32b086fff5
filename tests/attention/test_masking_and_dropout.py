"""Rows with no allowed key give 0 and zero finite gradients on every backend; dropout
statistics; out == weights @ v."""

from __future__ import annotations

import pytest
import torch

import qkv
from qkv.attention.backends import all_backends
from qkv.attention.validate import validate

BACKENDS = ("reference", "sdpa", "flash-tiles", "tiled")

EMPTY_ROW_CASES = {
    # name: (q_len, k_len, options, rows with no key)
    "bool_mask": (6, 9, "bool", [0, 3]),
    "float_mask_-inf": (6, 9, "float", [1, 5]),
    "causal_nq_gt_nk": (8, 5, {"causal": True}, [0, 1, 2]),
    "window_nq_gt_nk": (8, 5, {"window": (1, 0)}, [0, 1, 2]),
    "window_beyond_keys": (4, 6, {"window": (0, None), "causal": True}, []),
}


def _options(spec, q_len, k_len, rows):
    if spec == "bool":
        mask = torch.rand(1, 1, q_len, k_len) > 0.3
        mask[..., rows, :] = False
        return {"mask": mask}
    if spec == "float":
        mask = torch.randn(1, 1, q_len, k_len)
        mask[..., rows, :] = float("-inf")
        return {"mask": mask}
    return dict(spec)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(EMPTY_ROW_CASES))
def test_rows_with_no_key_are_zero_with_zero_finite_gradients(case: str, backend: str) -> None:
    q_len, k_len, spec, rows = EMPTY_ROW_CASES[case]
    options = _options(spec, q_len, k_len, rows)
    q, k, v = (torch.randn(2, 2, n, 8, requires_grad=True) for n in (q_len, k_len, k_len))
    reason = all_backends()[backend].refusal(validate(q, k, v, **options))
    if reason is not None:
        pytest.skip(f"{backend} does not serve this call: {reason}")
    out = qkv.attention(q, k, v, backend=backend, **options)
    out.square().sum().backward()
    for t in (out, q.grad, k.grad, v.grad):
        assert torch.isfinite(t).all()
    assert torch.all(out[:, :, rows] == 0)
    assert torch.all(q.grad[:, :, rows] == 0)


@pytest.mark.parametrize("backend", ["reference", "tiled"])
def test_dropout_statistics_and_out_equals_weights_at_v(backend: str) -> None:
    p = 0.3
    q, k, v = (torch.randn(2, 4, 64, 16, dtype=torch.float64) for _ in range(3))
    torch.manual_seed(1)
    out, weights = qkv.attention_with_weights(q, k, v, dropout_p=p, backend=backend)
    _, clean = qkv.attention_with_weights(q, k, v, backend="reference")
    torch.testing.assert_close(out, weights @ v, atol=1e-12, rtol=1e-12)
    dropped = (weights == 0).double().mean().item()
    n = weights.numel()
    assert abs(dropped - p) < 5 * (p * (1 - p) / n) ** 0.5  # 5 sigma
    kept = weights != 0
    torch.testing.assert_close(weights[kept], clean[kept] / (1 - p))  # survivors rescaled
    # the same seed gives the same mask; another seed another one
    torch.manual_seed(1)
    again = qkv.attention(q, k, v, dropout_p=p, backend=backend)
    torch.testing.assert_close(again, out, atol=0, rtol=0)
    torch.manual_seed(2)
    other = qkv.attention(q, k, v, dropout_p=p, backend=backend)
    assert not torch.equal(other, out)


def test_dropout_masks_of_tiled_and_reference_are_identical() -> None:
    q, k, v = (torch.randn(1, 2, 300, 8) for _ in range(3))
    torch.manual_seed(4)
    _, w_ref = qkv.attention_with_weights(q, k, v, dropout_p=0.5, backend="reference")
    torch.manual_seed(4)
    _, w_tiled = qkv.attention_with_weights(q, k, v, dropout_p=0.5, backend="tiled")
    assert torch.equal(w_ref == 0, w_tiled == 0)


def test_extreme_scores_never_nan() -> None:
    q = torch.randn(1, 2, 40, 8) * 1e4
    k = torch.randn(1, 2, 40, 8) * 1e4
    v = torch.randn(1, 2, 40, 8)
    for backend in BACKENDS:  # flash-tiles serves this causal call
        out = qkv.attention(q, k, v, causal=True, backend=backend)
        assert torch.isfinite(out).all(), backend
