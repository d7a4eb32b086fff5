"""The ``sdpa`` backend: where it serves, which PyTorch kernel runs, and why it refuses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import qkv
from qkv.attention.sdpa import sdpa_check, sdpa_kernel_name
from qkv.attention.validate import validate


def _call(b=1, h=4, hk=4, n=33, m=33, d=16, dv=16, dtype=torch.float32, **options):
    q = torch.randn(b, h, n, d, dtype=dtype)
    k = torch.randn(b, hk, m, d, dtype=dtype)
    v = torch.randn(b, hk, m, dv, dtype=dtype)
    return validate(q, k, v, **options)


REFUSALS = [
    ({"need_weights": True}, "need_weights"),
    ({"softcap": 5.0}, "softcap"),
    ({"alibi_slopes": torch.ones(4)}, "ALiBi"),
    ({"window": (4, 0)}, "window"),
    ({"causal": True, "n": 7}, "top-left"),
    ({"causal": True, "mask": torch.ones(33, 33, dtype=torch.bool)}, "merged"),
    ({"dropout_p": 0.1}, "dropout"),
    ({"dv": 8}, "math path"),
]


@pytest.mark.parametrize(("options", "reason"), REFUSALS, ids=[r for _, r in REFUSALS])
def test_refuses_what_would_need_n_by_n(options: dict, reason: str) -> None:
    why = sdpa_check(_call(**options))
    assert why is not None and reason in why


SERVED = [
    {},
    {"causal": True},
    {"mask": torch.rand(1, 1, 33, 33) > 0.5},
    {"mask": torch.randn(1, 4, 33, 33)},
    {"hk": 1},  # MQA through enable_gqa
    {"hk": 2, "causal": True},  # GQA
    {"n": 1, "causal": True},  # one query: sees every key, so not causal at all
    {"n": 5, "m": 40},
    {"dtype": torch.bfloat16},
    {"scale": 0.3},
]


@pytest.mark.parametrize("options", SERVED, ids=range(len(SERVED)))
def test_serves_with_the_fused_kernel(options: dict) -> None:
    call = _call(**options)
    assert sdpa_check(call) is None
    assert sdpa_kernel_name(call) == "flash"  # the fused CPU kernel, not the math path
    # Forcing the fused kernel alone must run (SDPA raises if it cannot).
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        out = qkv.attention(
            call.q,
            call.k,
            call.v,
            causal=call.causal,
            mask=call.mask,
            scale=call.scale,
            backend="sdpa",
        )
    expected = qkv.attention(
        call.q,
        call.k,
        call.v,
        causal=call.causal,
        mask=call.mask,
        scale=call.scale,
        backend="reference",
    )
    tol = 2e-2 if call.q.dtype == torch.bfloat16 else 1e-5
    torch.testing.assert_close(out, expected, atol=tol, rtol=tol)


def test_decode_single_query_is_not_causal_in_sdpa() -> None:
    call = _call(n=1, m=20, causal=True)
    out = qkv.attention(call.q, call.k, call.v, causal=True, backend="sdpa")
    full = F.scaled_dot_product_attention(call.q, call.k, call.v)  # every key
    torch.testing.assert_close(out, full)


@pytest.mark.parametrize(
    "options",
    [
        {"causal": True},
        {"mask": torch.rand(2, 1, 40, 40) > 0.4},
        {"mask": torch.randn(1, 3, 40, 40)},
        {"scale": 0.2},
    ],
    ids=["causal", "bool", "float", "scale"],
)
def test_reference_agrees_with_pytorch_sdpa(options: dict) -> None:
    """The oracle itself checked against PyTorch wherever both apply (float64, math path)."""
    q, k, v = (torch.randn(2, 3, 40, 16, dtype=torch.float64) for _ in range(3))
    opts = dict(options)
    if "mask" in opts and opts["mask"].is_floating_point():
        opts["mask"] = opts["mask"].double()
    expected = F.scaled_dot_product_attention(
        q,
        k,
        v,
        attn_mask=opts.get("mask"),
        is_causal=opts.get("causal", False),
        scale=opts.get("scale"),
    )
    got = qkv.attention(q, k, v, backend="reference", **opts)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-12)


def test_empty_row_detection_for_gpu_refusal() -> None:
    from qkv.attention.sdpa import _has_empty_row

    mask = torch.ones(1, 1, 4, 5, dtype=torch.bool)
    assert not _has_empty_row(mask)
    mask[..., 2, :] = False
    assert _has_empty_row(mask)
    bias = torch.zeros(1, 1, 4, 5)
    bias[..., 1, :4] = float("-inf")
    assert not _has_empty_row(bias)
    bias[..., 1, 4] = float("-inf")
    assert _has_empty_row(bias)
