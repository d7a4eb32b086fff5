"""``qkv bench --quick``: every CPU backend forward on every variant at one small size,
in-process, with what ``auto`` chose for each call and why."""

from __future__ import annotations

import time

import torch
from torch import Tensor

from qkv.attention import attention, attention_with_weights, explain_backend
from qkv.attention.alibi import alibi_slopes
from qkv.attention.backends import get_backend
from qkv.attention.validate import validate

QUICK_VARIANTS: dict[str, dict] = {
    "plain": {},
    "causal": {"causal": True},
    "gqa causal": {"causal": True, "kv_heads": "quarter"},
    "bool mask": {"mask": True},
    "window 64": {"causal": True, "window": (64, 0)},
    "alibi": {"causal": True, "alibi": True},
    "softcap 30": {"causal": True, "softcap": 30.0},
    "dropout 0.1": {"causal": True, "dropout_p": 0.1},
    "need_weights": {"need_weights": True},
    "decode 1×N": {"causal": True, "q_len": 1},
}
QUICK_BACKENDS = ("auto", "sdpa", "flash-tiles", "tiled", "reference")


def _median_time(
    q: Tensor, k: Tensor, v: Tensor, backend: str, options: dict, repeats: int
) -> float:
    """Median seconds of ``repeats`` forward calls after one warm-up call."""
    options = dict(options)
    run = attention_with_weights if options.pop("need_weights", False) else attention
    times = []
    with torch.no_grad():
        run(q, k, v, backend=backend, **options)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            run(q, k, v, backend=backend, **options)
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def quick_rows(n: int = 512, heads: int = 8, dim: int = 64, repeats: int = 3) -> list[str]:
    """Markdown lines: per variant, each backend's forward time ('refuses' where it cannot
    serve the call) and what auto chose, with its reason.

    q (1, heads, n, dim) (one query for the decode row), k and v (1, kv heads, n, dim).
    """
    header = ["variant", "shape", *QUICK_BACKENDS, "auto chose", "why"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, spec in QUICK_VARIANTS.items():
        spec = dict(spec)
        kv_heads = spec.pop("kv_heads", heads)
        if kv_heads == "quarter":  # 4 query heads per key/value head, or MQA
            kv_heads = heads // 4 if heads % 4 == 0 else 1
        q_len = spec.pop("q_len", n)
        if spec.pop("mask", False):
            spec["mask"] = torch.rand(1, 1, q_len, n) > 0.2
        if spec.pop("alibi", False):
            spec["alibi_slopes"] = alibi_slopes(heads)
        q = torch.randn(1, heads, q_len, dim)  # (1, Hq, Nq, D)
        k, v = torch.randn(1, kv_heads, n, dim), torch.randn(1, kv_heads, n, dim)
        call = validate(q, k, v, **spec)
        cells = []
        for backend in QUICK_BACKENDS:
            why = None if backend == "auto" else get_backend(backend).refusal(call)
            if why is not None:
                cells.append("refuses")
                continue
            seconds = _median_time(q, k, v, backend, spec, repeats)
            cells.append(f"{seconds * 1e3:.1f} ms")
        choice = explain_backend(q, k, v, **spec)
        shape = f"{heads}/{kv_heads}×{q_len}×{n}×{dim}"
        lines.append("| " + " | ".join([name, shape, *cells, choice.backend, choice.reason]) + " |")
    return lines
