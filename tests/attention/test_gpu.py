"""The Triton backend and ``auto`` on a CUDA GPU (issue #16), under the ``gpu`` marker.

Run on a GPU (``benchmarks/gpu_check.sh`` does this, with the interpreter off)::

    TRITON_INTERPRET=0 pytest -m gpu tests/attention/test_gpu.py

Without CUDA every test skips with the reason. The same tests run on the CPU, tiny, under
the Triton interpreter, so that a GPU run can fail on nothing but the GPU::

    QKV_GPU_TEST_DEVICE=cpu pytest -m gpu tests/attention/test_gpu.py   # the dry run

Checked: ``triton`` against the float64 ``reference`` (on the same device) with the
precision rule err ≤ 2·err(PyTorch in the same dtype) + eps, forward and backward, fp16 and
bf16, over the variant grid (causal, windows, ALiBi, softcap, bool/float masks, GQA/MQA,
Nq ≠ Nk, odd lengths 97/1025, head dims 64/128/256, varlen); the backward bit-identical when
run twice; and ``auto`` beside SDPA where SDPA serves, timed and written as a table
(``$QKV_GPU_RESULTS/auto-vs-sdpa.md`` when set), not asserted on.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_triton_oracle import assert_precision, assert_precision_of, lowp_attention

import qkv
from qkv.attention.alibi import alibi_slopes

DEVICE = os.environ.get("QKV_GPU_TEST_DEVICE", "cuda")
DRY = DEVICE == "cpu"  # the CPU rehearsal: same tests, tiny sizes, Triton interpreter


def _skip_reason() -> str | None:
    if DRY:
        if os.environ.get("TRITON_INTERPRET") != "1":
            return "the CPU dry run needs TRITON_INTERPRET=1 (tests/conftest.py sets it)"
        return None
    if not torch.cuda.is_available():
        return "no CUDA device here (set QKV_GPU_TEST_DEVICE=cpu for the CPU dry run)"
    if os.environ.get("TRITON_INTERPRET") == "1":
        return "TRITON_INTERPRET=1 runs CPU tensors only: run with TRITON_INTERPRET=0"
    from qkv.attention.triton_support import triton_available

    return triton_available()


_REASON = _skip_reason()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),  # interpreter exp2(-inf) chatter
]

FP16, BF16 = torch.float16, torch.bfloat16
DTYPES = [pytest.param(FP16, id="fp16"), pytest.param(BF16, id="bf16")]


def size(n: int) -> int:
    """A GPU length or head dim, shrunk for the interpreter in the dry run (odd stays odd)."""
    if not DRY:
        return n
    return {97: 17, 1025: 33, 300: 21, 64: 16, 128: 32, 256: 32}.get(n, n)


def _masters(batch, q_heads, kv_heads, q_len, k_len, head_dim):
    """float64 masters on the device: q (B, Hq, Nq, D), k, v (B, Hkv, Nk, D)."""
    gen = torch.Generator().manual_seed(q_len * 7 + k_len + head_dim)
    shapes = [(batch, q_heads, q_len, head_dim), (batch, kv_heads, k_len, head_dim)]
    q, k, v = (torch.randn(s, generator=gen, dtype=torch.float64) for s in [*shapes, shapes[1]])
    return q.to(DEVICE), k.to(DEVICE), v.to(DEVICE)


# (batch, q_heads, kv_heads, Nq, Nk): MHA, GQA, MQA with Nq < Nk, Nq > Nk.
SHAPES = {
    "mha-97": (2, 4, 4, 97, 97),
    "gqa-1025": (1, 8, 2, 1025, 1025),
    "mqa-97x1025": (1, 4, 1, 97, 1025),
    "mha-1025x97": (1, 2, 2, 1025, 97),
}


def _bool_mask(q_len, k_len):
    gen = torch.Generator().manual_seed(11)
    mask = torch.rand(1, 1, q_len, k_len, generator=gen) > 0.3
    mask[..., 3, :] = False  # a row with no key
    return mask.to(DEVICE)


def _float_mask(heads, q_len, k_len):
    gen = torch.Generator().manual_seed(12)
    mask = torch.randn(1, heads, q_len, k_len, generator=gen)
    mask[torch.rand(mask.shape, generator=gen) < 0.1] = float("-inf")
    return mask.to(DEVICE)


def _variant(name: str, heads: int, q_len: int, k_len: int) -> dict:
    slopes = alibi_slopes(heads).to(DEVICE)
    return {
        "none": {},
        "causal": {"causal": True},
        "window-causal": {"window": (size(64), 0)},
        "window-both": {"window": (size(64), size(16))},
        "alibi": {"alibi_slopes": slopes},
        "softcap": {"softcap": 30.0},
        "bool-mask": {"mask": _bool_mask(q_len, k_len)},
        "float-mask": {"mask": _float_mask(heads, q_len, k_len)},
        "causal-alibi-softcap": {"causal": True, "alibi_slopes": slopes, "softcap": 20.0},
    }[name]


VARIANTS = [
    "none", "causal", "window-causal", "window-both", "alibi", "softcap", "bool-mask",
    "float-mask", "causal-alibi-softcap",
]  # fmt: skip
# Every variant on two shapes (rotating through SHAPES) keeps the number of distinct kernel
# specialisations, each compiled once on a fresh GPU, within the script's time budget.
GRID = [
    (variant, shape)
    for i, variant in enumerate(VARIANTS)
    for shape in (list(SHAPES)[i % 4], list(SHAPES)[(i + 1) % 4])
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("variant", "shape"), GRID, ids=[f"{v}-{s}" for v, s in GRID])
def test_triton_matches_reference_over_the_variant_grid(variant, shape, dtype) -> None:
    batch, hq, hkv, nq, nk = SHAPES[shape]
    nq, nk = size(nq), size(nk)
    q, k, v = _masters(batch, hq, hkv, nq, nk, size(128))
    assert_precision(q, k, v, dtype, **_variant(variant, hq, nq, nk))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("head_dim", [64, 128, 256])
@pytest.mark.parametrize("variant", ["causal", "causal-alibi-softcap"])
def test_triton_head_dims(head_dim, variant, dtype) -> None:
    q, k, v = _masters(1, 4, 2, size(97), size(1025), size(head_dim))
    assert_precision(q, k, v, dtype, **_variant(variant, 4, size(97), size(1025)))


def _cu(lengths: list[int]) -> torch.Tensor:
    return torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_varlen_matches_per_sequence_reference(causal, dtype) -> None:
    from qkv.attention import varlen_attention

    lengths = [size(97), size(1025), 1, size(300)]
    heads, kv_heads, head_dim = 4, 2, size(128)
    gen = torch.Generator().manual_seed(5)
    total = sum(lengths)
    q = torch.randn(total, heads, head_dim, generator=gen, dtype=torch.float64).to(DEVICE)
    k = torch.randn(total, kv_heads, head_dim, generator=gen, dtype=torch.float64).to(DEVICE)
    v = torch.randn(total, kv_heads, head_dim, generator=gen, dtype=torch.float64).to(DEVICE)
    cu = _cu(lengths).to(DEVICE)

    def per_sequence(attend):
        def run(q, k, v):
            outs, start = [], 0
            for n in lengths:
                piece = [t[start : start + n].transpose(0, 1).unsqueeze(0) for t in (q, k, v)]
                outs.append(attend(*piece)[0].transpose(0, 1))  # (n, Hq, Dv)
                start += n
            return torch.cat(outs)

        return run

    assert_precision_of(
        q, k, v, dtype,
        fast=lambda a, b, c: varlen_attention(a, b, c, cu, causal=causal),
        exact=per_sequence(
            lambda a, b, c: qkv.attention(a, b, c, causal=causal, backend="reference")
        ),
        lowp=per_sequence(lambda a, b, c: lowp_attention(a, b, c, causal=causal)),
    )  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", ["causal", "float-mask", "causal-alibi-softcap"])
def test_backward_twice_is_bit_identical(variant, dtype) -> None:
    q, k, v = (t.to(dtype) for t in _masters(1, 8, 2, size(1025), size(1025), size(128)))
    options = _variant(variant, 8, size(1025), size(1025))
    if "mask" in options and options["mask"].is_floating_point():
        options["mask"] = options["mask"].to(dtype)
    grad = torch.randn(q.shape, generator=torch.Generator().manual_seed(2)).to(DEVICE, dtype)

    def grads():
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        out = qkv.attention(*leaves, backend="triton", **options)
        return torch.autograd.grad(out, leaves, grad)

    for name, first, second in zip(("dq", "dk", "dv"), grads(), grads()):
        assert torch.equal(first, second), f"{name} differs between two identical backwards"


def _median_ms(step, reps: int) -> float:
    for _ in range(2):
        step()
    times = []
    for _ in range(reps):
        if DEVICE == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if DEVICE == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _auto_and_sdpa_ms(q, k, v, grad, causal: bool, reps: int) -> tuple[float, float]:
    """Median fwd+bwd ms of qkv.attention (auto) and of SDPA, interleaved call by call."""

    def auto_step():
        torch.autograd.grad(qkv.attention(q, k, v, causal=causal), (q, k, v), grad)

    def sdpa_step():
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        torch.autograd.grad(out, (q, k, v), grad)

    auto, sdpa = [], []
    for _ in range(reps // 2 or 1):
        auto.append(_median_ms(auto_step, 2))
        sdpa.append(_median_ms(sdpa_step, 2))
    return statistics.median(auto), statistics.median(sdpa)


def test_auto_beside_sdpa_measured_and_reported() -> None:
    """fwd+bwd of ``auto`` and of SDPA where SDPA serves (bf16); a table, not a timed assert.

    The target (issue #16) is auto ≥ 0.95× SDPA there; the ratios go to the results file so
    that the CUDA order in ``dispatch.preference`` can be decided from them.
    """
    sizes = [(1024, 64), (1024, 128), (4096, 128)] if not DRY else [(33, 16)]
    rows = [
        "| causal | N | d | B×H | backend auto chose | auto ms | sdpa ms | sdpa/auto |",
        "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: |",
    ]
    for causal in (False, True):
        for n, d in sizes:
            batch, heads = max(1, 8192 // n), 2048 // d if not DRY else 2
            q, k, v = (
                torch.randn(batch, heads, n, d, device=DEVICE, dtype=BF16, requires_grad=True)
                for _ in range(3)
            )
            grad = torch.randn_like(q)
            chosen = qkv.explain_backend(q, k, v, causal=causal).backend

            auto_ms, sdpa_ms = _auto_and_sdpa_ms(q, k, v, grad, causal, 3 if DRY else 20)
            # both served by the same kernel -> ratio ~1; a slower auto shows below 0.95
            rows.append(
                f"| {causal} | {n} | {d} | {batch}×{heads} | {chosen} | {auto_ms:.3f} | "
                f"{sdpa_ms:.3f} | {sdpa_ms / auto_ms:.2f} |"
            )
            assert auto_ms > 0 and sdpa_ms > 0
    device = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (dry run, interpreter)"
    text = "\n".join([f"auto vs SDPA, fwd+bwd, bf16, on {device}; medians", "", *rows, ""])
    print("\n" + text)
    out_dir = os.environ.get("QKV_GPU_RESULTS")
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "auto-vs-sdpa.md").write_text(text)
