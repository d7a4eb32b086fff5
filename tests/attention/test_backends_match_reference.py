"""Every backend against the ``reference`` oracle, output and gradients of q, k and v.

float64: agreement to ~1e-9. float32 / bfloat16: the precision rule
err(backend) ≤ 2 × err(PyTorch at the same precision) + ε, both measured against the float64
reference on the same inputs.
"""

from __future__ import annotations

import itertools
import zlib

import pytest
import torch
from attention_cases import (
    Problem,
    Shape,
    backend_fn,
    make_problem,
    max_error,
    precision_eps,
    run_with_grads,
    torch_same_precision,
)

from qkv.attention.backends import all_backends
from qkv.attention.validate import validate

SMALL_SHAPES = [
    Shape(1, 1, 1, 1, 1, 8, 8),
    Shape(2, 4, 2, 7, 7, 16, 16),  # GQA
    Shape(1, 4, 1, 97, 97, 32, 32),  # MQA
    Shape(2, 2, 2, 7, 97, 16, 8),  # Nq < Nk, value dim ≠ key dim
    Shape(1, 2, 2, 97, 7, 16, 16),  # Nq > Nk: causal leaves rows with no key
    Shape(1, 2, 1, 1, 97, 16, 16),  # one query (decoding)
]
BIG_SHAPES = [
    Shape(1, 2, 1, 1025, 1025, 32, 32),
    Shape(1, 2, 2, 300, 1025, 64, 64),  # several query and key blocks in tiled, ragged ends
]
VARIANTS = [
    "none",
    "causal",
    "window",
    "window_left",
    "alibi",
    "alibi_batch",
    "softcap",
    "scale",
    "dropout",
    "bool_mask",
    "float_mask",
    "causal+window+alibi+softcap",
    "bool_mask+softcap+alibi_batch",
    "causal+dropout+window",
    "float_mask+causal+scale",
]
BIG_VARIANTS = ["none", "causal", "causal+window+alibi+softcap", "bool_mask+dropout"]
DTYPES = [torch.float64, torch.float32, torch.bfloat16]

CASES = [
    *itertools.product(SMALL_SHAPES, VARIANTS, DTYPES),
    *itertools.product(BIG_SHAPES, BIG_VARIANTS, DTYPES),
]


# The CPU backends (each where it serves); triton has its own battery in test_triton*.py.
BACKENDS = ("sdpa", "math", "flash-tiles", "tiled")


def _serving_backends(problem: Problem) -> list[str]:
    call = validate(problem.q, problem.k, problem.v, **problem.options)
    backends = all_backends()
    return [name for name in BACKENDS if backends[name].refusal(call) is None]


def _seed(shape: Shape, variant: str, dtype: torch.dtype) -> int:
    return zlib.crc32(f"{shape}|{variant}|{dtype}".encode())


@pytest.mark.parametrize(
    ("shape", "variant", "dtype"),
    CASES,
    ids=[f"{s}-{v}-{str(d).removeprefix('torch.')}" for s, v, d in CASES],
)
def test_backend_matches_reference(shape: Shape, variant: str, dtype: torch.dtype) -> None:
    seed = _seed(shape, variant, dtype)
    problem = make_problem(shape, variant, dtype, seed)
    names = _serving_backends(problem)
    assert "tiled" in names, "tiled serves every call"
    labels = ("out", "dq", "dk", "dv")
    if dtype == torch.float64:
        expected = run_with_grads(backend_fn("reference"), problem, seed)
        for name in names:
            got = run_with_grads(backend_fn(name), problem, seed)
            for label, a, b in zip(labels, got, expected):
                torch.testing.assert_close(
                    a, b, atol=1e-9, rtol=1e-9, msg=lambda m, n=name, x=label: f"{n} {x}: {m}"
                )
        return
    oracle = run_with_grads(backend_fn("reference"), problem, seed, dtype=torch.float64)
    peer = run_with_grads(torch_same_precision, problem, seed)
    eps = precision_eps(dtype)
    for name in ["reference", *names]:
        got = run_with_grads(backend_fn(name), problem, seed)
        for label, a, p, o in zip(labels, got, peer, oracle):
            assert a.dtype == dtype
            err, peer_err = max_error(a, o), max_error(p, o)
            assert err <= 2 * peer_err + eps, (
                f"{name} {label}: error {err:.3g} vs float64 reference exceeds 2 × PyTorch's "
                f"{dtype} error {peer_err:.3g} + {eps:g}"
            )
