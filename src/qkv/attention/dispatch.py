"""``auto``: choose the fastest backend that can serve a call, and say why."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from qkv.attention.backends import all_backends, get_backend
from qkv.attention.call import AttentionCall
from qkv.attention.empty import is_empty
from qkv.attention.thresholds import CpuThresholds, cpu_thresholds

logger = logging.getLogger("qkv.attention")


@dataclass(frozen=True, kw_only=True)
class BackendChoice:
    """Which backend serves a call and why; ``refused`` maps each skipped backend to its reason."""

    backend: str
    reason: str
    refused: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"{self.backend}: {self.reason}"]
        lines += [f"  not {name}: {why}" for name, why in self.refused.items()]
        return "\n".join(lines)


def preference(call: AttentionCall) -> list[tuple[str, str]]:
    """Backends in order of expected speed for this call, each with the reason it is preferred.

    On CPU the order comes from benchmarks/attention.py (benchmarks/results/attention-cpu.md).
    On CUDA no measurement exists yet (no GPU has run benchmarks/attention_gpu.py, 2026-11-24),
    so PyTorch's fused kernels (FlashAttention-2 / cuDNN, themselves near the hardware limit)
    keep the calls they serve and the Triton kernels take every variant SDPA refuses (ALiBi,
    softcap, windows, causal with a mask, ...); revisit once the GPU table is committed.
    ``flash-tiles`` comes right before ``tiled`` on CPU: it is tiled's algorithm with each tile
    in PyTorch's vectorised kernel, and was tiled's internal fast path for exactly the calls it
    serves until it became a backend of its own (same routing, same speed).
    """
    order: list[tuple[str, str]] = []
    cpu = call.q.device.type == "cpu"
    limits = cpu_thresholds() if cpu else None
    if limits is not None and _small_for_math(call, limits):
        order.append(
            (
                "math",
                f"small CPU problem (Nq ≥ {limits.math_min_queries}, Nq·Nk ≤ "
                f"{_math_max_qk(call, limits)}, B·Hq·Nq·Nk ≤ {limits.math_max_scores}; "
                f"{str(call.q.dtype).removeprefix('torch.')} thresholds of "
                f"{limits.source}): matmul → softmax → matmul beats the fused kernel's "
                "per-call cost",
            )
        )
    order.append(("sdpa", "PyTorch's fused scaled_dot_product_attention serves this call"))
    if call.q.device.type == "cuda":
        order.append(("triton", "fused Triton kernel: serves the variants SDPA cannot fuse"))
    if call.need_weights:
        order.append(("reference", "attention weights requested; reference computes them"))
    small_limit = limits.reference_max_qk if limits is not None else SMALL_PROBLEM
    if call.q_len * call.k_len <= small_limit:
        order.append(("reference", f"small problem (Nq·Nk ≤ {small_limit}): one matmul wins"))
    if call.q.device.type == "cpu":
        order.append(
            (
                "flash-tiles",
                "PyTorch's CPU FlashAttention kernel on causal tiles (blocks above the diagonal "
                "skipped), merged exactly: O(N) memory",
            )
        )
    order.append(("tiled", "blockwise online softmax: every variant with O(N) memory"))
    order.append(("reference", "fallback"))
    return order


# CPU problems that ``math`` serves faster than SDPA's fused kernel, and up to which the
# one-shot reference beats the blockwise loops, are measured per CPU capability: see
# thresholds.py (AVX-512 measured on a 2-core AMD EPYC, torch 2.13, 2026-11-24: forward+
# backward of every shape up to 128×128 scores per head, forward up to ~1M scores in all;
# with a single query (decoding) SDPA is faster, 8 vs 14 us at 64 keys, fp32).
def _math_max_qk(call: AttentionCall, limits: CpuThresholds) -> int:
    low = call.q.dtype in (torch.bfloat16, torch.float16)
    return limits.math_max_qk_lowp if low else limits.math_max_qk


def _small_for_math(call: AttentionCall, limits: CpuThresholds) -> bool:
    scores = call.batch * call.q_heads * call.q_len * call.k_len
    return (
        call.q_len >= limits.math_min_queries
        and call.q_len * call.k_len <= _math_max_qk(call, limits)
        and scores <= limits.math_max_scores
    )


# Nq·Nk up to which the one-shot reference is preferred off the CPU (CPU: thresholds.py).
SMALL_PROBLEM = 128 * 128


def choose(call: AttentionCall, backend: str = "auto") -> BackendChoice:
    """Pick the backend for ``call``; a named backend that cannot serve it raises ValueError.

    A call with a zero-sized batch, query or key dim is answered without any kernel (see
    ``empty.py``): a named backend then only has to be available here.
    """
    if not isinstance(backend, str):
        raise ValueError(
            f"backend must be a backend name (str), got {backend!r}; "
            "use 'auto' or a name from qkv.attention_backends()"
        )
    if is_empty(call):
        why = "a zero-sized batch, query or key dim: the result is defined without a kernel"
        if backend == "auto":
            return BackendChoice(backend="reference", reason=why)
        unavailable = get_backend(backend).available()
        if unavailable is not None:
            raise ValueError(
                f"attention backend {backend!r} cannot serve this call ({call.describe()}): "
                f"unavailable: {unavailable}; use backend='auto' or another backend"
            )
        return BackendChoice(backend=backend, reason=why)
    if backend != "auto":
        chosen = get_backend(backend)
        reason = chosen.refusal(call)
        if reason is not None:
            raise ValueError(
                f"attention backend {backend!r} cannot serve this call "
                f"({call.describe()}): {reason}; use backend='auto' or another backend"
            )
        return BackendChoice(backend=backend, reason="requested by name")
    backends = all_backends()
    refused: dict[str, str] = {}
    for name, why in preference(call):
        if name not in backends or name in refused:
            continue
        reason = backends[name].refusal(call)
        if reason is None:
            choice = BackendChoice(backend=name, reason=why, refused=refused)
            if logger.isEnabledFor(logging.DEBUG):  # describe() costs ~10 µs per call
                logger.debug("qkv.attention: %s -> %s (%s)", call.describe(), name, why)
            return choice
        refused[name] = reason
    raise AssertionError("reference serves every call")  # pragma: no cover
