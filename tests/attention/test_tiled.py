"""The ``tiled`` backend: gradcheck, small blocks (many skipped and ragged blocks), weights from
the stored log-sum-exp, and memory that grows linearly in N."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from attention_cases import Shape, make_problem, run_with_grads

import qkv
from qkv.attention.tiled import tiled_attention
from qkv.attention.tiled_plan import TilePlan
from qkv.attention.validate import validate

GRADCHECK_VARIANTS = [
    "none",
    "causal+window",
    "alibi_batch+softcap",
    "bool_mask+float_mask",
    "dropout+causal",
    "float_mask+window_left",
]


def _gradcheck_variant(name: str) -> str:
    return name.replace("bool_mask+float_mask", "bool_mask")


@pytest.mark.parametrize("variant", GRADCHECK_VARIANTS)
def test_gradcheck_float64(variant: str) -> None:
    shape = Shape(1, 4, 2, 9, 13, 6, 5)
    problem = make_problem(shape, _gradcheck_variant(variant), torch.float64, seed=3)
    q, k, v = (t.clone().requires_grad_() for t in (problem.q, problem.k, problem.v))

    def fn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(11)  # same dropout mask on every evaluation
        call = validate(q, k, v, **problem.options)
        return tiled_attention(call, block_q=4, block_k=5)[0]

    assert torch.autograd.gradcheck(fn, (q, k, v), eps=1e-6, atol=1e-7)


def test_gradcheck_through_weights() -> None:
    """need_weights: the weights are differentiable (through the recomputed scores and LSE)."""
    problem = make_problem(Shape(1, 2, 1, 5, 7, 4, 4), "causal+alibi+softcap", torch.float64, 1)
    q, k, v = (t.clone().requires_grad_() for t in (problem.q, problem.k, problem.v))

    def fn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
        call = validate(q, k, v, need_weights=True, **problem.options)
        out, weights = tiled_attention(call, block_q=2, block_k=3)
        return out, weights

    assert torch.autograd.gradcheck(fn, (q, k, v), eps=1e-6, atol=1e-7)


SMALL_BLOCK_VARIANTS = [
    "none",
    "causal",
    "window",
    "window_left",
    "causal+window+alibi+softcap",
    "bool_mask+dropout",
    "float_mask+causal",
]


@pytest.mark.parametrize("variant", SMALL_BLOCK_VARIANTS)
@pytest.mark.parametrize(
    "shape",
    [Shape(2, 4, 2, 61, 61, 8, 8), Shape(1, 3, 1, 29, 83, 8, 4), Shape(1, 2, 2, 83, 29, 8, 8)],
)
def test_small_blocks_match_reference(shape: Shape, variant: str) -> None:
    """Blocks of 8×16 rows/keys exercise skipping, partial masks and ragged edges."""
    problem = make_problem(shape, variant, torch.float64, seed=7)

    def tiled_small(q, k, v, **options):
        return tiled_attention(validate(q, k, v, **options), block_q=8, block_k=16)[0]

    expected = run_with_grads(lambda q, k, v, **o: qkv.attention(q, k, v, **o), problem, 5)
    got = run_with_grads(tiled_small, problem, 5)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_causal_and_window_skip_blocks() -> None:
    q = torch.randn(1, 1, 1024, 8)
    plan = TilePlan.build(validate(q, q, q, causal=True), block_q=128, block_k=128)
    computed = sum(len(plan.key_blocks(i, i + 128)) for i in plan.query_starts())
    assert computed == 8 * 9 // 2  # the lower triangle of an 8×8 block grid
    plan = TilePlan.build(validate(q, q, q, window=(100, 0)), block_q=128, block_k=128)
    computed = sum(len(plan.key_blocks(i, i + 128)) for i in plan.query_starts())
    assert computed <= 2 * 8  # a band: at most two key blocks per query block
    full_blocks = [b for b in plan.key_blocks(512, 640) if not b.needs_position_mask]
    assert not full_blocks  # every band block straddles an edge
    plan = TilePlan.build(validate(q, q, q, causal=True), block_q=128, block_k=128)
    inner = [b for b in plan.key_blocks(512, 640) if not b.needs_position_mask]
    assert [(b.start, b.stop) for b in inner] == [(j, j + 128) for j in range(0, 512, 128)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_weights_from_lse_match_reference(dtype: torch.dtype) -> None:
    problem = make_problem(Shape(2, 4, 2, 33, 50, 8, 8), "causal+alibi+bool_mask", dtype, 2)
    _, w_ref = qkv.attention_with_weights(
        problem.q, problem.k, problem.v, backend="reference", **problem.options
    )
    out, w = qkv.attention_with_weights(
        problem.q, problem.k, problem.v, backend="tiled", **problem.options
    )
    assert w.dtype == w_ref.dtype == torch.float32
    torch.testing.assert_close(w, w_ref, atol=2e-6, rtol=1e-5)
    rows = w.sum(-1)
    assert torch.all(((rows - 1).abs() < 1e-5) | (rows == 0))  # rows sum to 1, or 0 if empty


def _saved_bytes(n: int) -> int:
    q = torch.randn(1, 2, n, 16, requires_grad=True)
    sizes: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        sizes.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        qkv.attention(q, q, q, causal=True, softcap=5.0, backend="tiled")
    return sum(sizes)


def test_saved_tensors_are_linear_in_n() -> None:
    small, large = _saved_bytes(512), _saved_bytes(2048)
    assert large <= 4.2 * small  # 4× the tokens: 4× the saved bytes, not 16×
    bytes_per_row = large / (2 * 2048)  # per (head, query)
    assert bytes_per_row <= 4 * 16 * 4 + 2 * 8  # q, k, v, out of d=16 floats + max, log-sum


_PEAK_SCRIPT = """
import resource, sys, torch, qkv
torch.set_num_threads(1)
n, backend = int(sys.argv[1]), sys.argv[2]
q, k, v = (torch.randn(1, 1, n, 64, requires_grad=True) for _ in range(3))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
qkv.attention(q, k, v, softcap=20.0, backend=backend).sum().backward()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def _peak_delta(n: int, backend: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(n), backend], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1])


def test_forward_backward_peak_memory_is_not_quadratic() -> None:
    """At N = 6144 one N×N float32 matrix is 144 MiB: reference needs several, tiled none."""
    n = 6144
    square = n * n * 4
    reference_peak = _peak_delta(n, "reference")
    tiled_peak = _peak_delta(n, "tiled")
    assert reference_peak > square  # the probe sees an N×N matrix when there is one
    assert tiled_peak < square / 4, f"tiled grew peak memory by {tiled_peak / 2**20:.0f} MiB"


@pytest.mark.parametrize("backend", ["tiled", "sdpa"])
def test_non_contiguous_inputs_and_gradients(backend: str) -> None:
    """q, k, v as views of a (B, N, H, D) projection, and a non-contiguous output gradient."""
    dtype = torch.float64
    q = torch.randn(2, 33, 4, 8, dtype=dtype).transpose(1, 2).requires_grad_()
    k = torch.randn(2, 40, 2, 8, dtype=dtype).transpose(1, 2).requires_grad_()
    v = torch.randn(2, 40, 2, 8, dtype=dtype).transpose(1, 2).requires_grad_()
    grad = torch.randn(2, 33, 4, 8, dtype=dtype).transpose(1, 2)
    results = []
    for name in ("reference", backend):
        out = qkv.attention(q, k, v, backend=name)
        results.append((out, *torch.autograd.grad(out, (q, k, v), grad)))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
