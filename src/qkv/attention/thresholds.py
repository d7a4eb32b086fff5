"""``auto``'s CPU size thresholds, measured per CPU capability (the vector ISA PyTorch's CPU
kernels dispatch to: ``torch.backends.cpu.get_cpu_capability()``).

Where a small problem is better served by ``math`` (matmul → softmax → matmul) than by SDPA's
fused kernel, or by the one-shot ``reference`` than by the blockwise backends, depends on the
vector width of the CPU: the fused kernel's per-call cost is fixed, the matmuls scale with
the SIMD width. The numbers come from ``benchmarks/attention_thresholds.py`` (results in
``benchmarks/results/attention-thresholds-cpu.md``); a capability that was never measured
gets :data:`DEFAULT`, the smallest fast-path window of the measured ones (the fused and
blockwise kernels are never much slower; the O(N²) paths can be).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch


@dataclass(frozen=True, kw_only=True)
class CpuThresholds:
    """Sizes up to which ``auto`` prefers the O(N²) paths on CPU.

    ``math_min_queries``: fewer queries (decoding) stay on SDPA; ``math_max_qk``: Nq·Nk per
    head; ``math_max_scores``: B·Hq·Nq·Nk in all (beyond it the scores leave the cache);
    ``reference_max_qk``: Nq·Nk per head up to which ``reference`` beats ``flash-tiles`` /
    ``tiled`` for calls SDPA cannot serve. ``source`` says where the numbers come from.
    """

    math_min_queries: int
    math_max_qk: int
    math_max_scores: int
    reference_max_qk: int
    source: str

    def __post_init__(self) -> None:
        for name in ("math_min_queries", "math_max_qk", "math_max_scores", "reference_max_qk"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"CpuThresholds.{name} must be an int >= 0, got {value!r}")


MEASURED: dict[str, CpuThresholds] = {
    # 2-core AMD EPYC with AVX-512, torch 2.13, 2026-11-24 (math_backend.py,
    # benchmarks/results/attention-cpu.md): math wins fwd+bwd up to 128×128 per head and
    # forward up to ~1M scores in all; reference beats tiled up to 128×128.
    "AVX512": CpuThresholds(
        math_min_queries=8,
        math_max_qk=128 * 128,
        math_max_scores=2**20,
        reference_max_qk=128 * 128,
        source="AMD EPYC AVX-512, 2026-11-24",
    ),
}


def _narrowest(measured: dict[str, CpuThresholds]) -> CpuThresholds:
    rows = list(measured.values())
    return CpuThresholds(
        math_min_queries=max(r.math_min_queries for r in rows),
        math_max_qk=min(r.math_max_qk for r in rows),
        math_max_scores=min(r.math_max_scores for r in rows),
        reference_max_qk=min(r.reference_max_qk for r in rows),
        source="default for an unmeasured capability: the narrowest measured window",
    )


DEFAULT = _narrowest(MEASURED)


@lru_cache(maxsize=1)
def _probed_capability() -> str:
    return torch.backends.cpu.get_cpu_capability()


def cpu_capability() -> str:
    """The capability PyTorch's CPU kernels run with here ('AVX512', 'AVX2', 'DEFAULT', ...)."""
    return _probed_capability()


def thresholds_for(capability: str) -> CpuThresholds:
    """The measured thresholds of ``capability``, or :data:`DEFAULT` if it was never measured.

    Example::

        >>> thresholds_for("AVX2").math_max_qk
        16384
        >>> thresholds_for("SVE256") is DEFAULT
        True
    """
    return MEASURED.get(capability.upper(), DEFAULT)


def cpu_thresholds() -> CpuThresholds:
    """The thresholds ``auto`` uses on this machine."""
    return thresholds_for(cpu_capability())
