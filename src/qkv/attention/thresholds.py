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
    head for float32/64 inputs, ``math_max_qk_lowp`` for bfloat16/float16 inputs (``math``
    computes in float32, SDPA's CPU kernel in the input dtype, which AVX2 emulates: the
    crossovers differ); ``math_max_scores``: B·Hq·Nq·Nk in all (beyond it the scores leave
    the cache);
    ``reference_max_qk``: Nq·Nk per head up to which ``reference`` beats ``flash-tiles`` /
    ``tiled`` for calls SDPA cannot serve. ``source`` says where the numbers come from.
    """

    math_min_queries: int
    math_max_qk: int
    math_max_qk_lowp: int
    math_max_scores: int
    reference_max_qk: int
    source: str

    def __post_init__(self) -> None:
        names = ("math_min_queries", "math_max_qk", "math_max_qk_lowp", "math_max_scores")
        for name in (*names, "reference_max_qk"):
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
        math_max_qk_lowp=128 * 128,
        math_max_scores=2**20,
        reference_max_qk=128 * 128,
        source="AMD EPYC AVX-512, 2026-11-24",
    ),
    # 2-core AMD EPYC, AVX2 native, torch 2.13, 2026-12-02, CPU time of one thread, two runs
    # (benchmarks/results/attention-thresholds-cpu.md): in fp32 SDPA's kernel beats math at
    # every size measured (math 0.45-0.93× its speed, N = 16..256); in bf16 math wins
    # 1.2-2.8× up to 256×256 (SDPA's bf16 is emulated on AVX2); reference beats tiled up to
    # 128×128 in both runs (1.07-1.27×), at 256×256 in one of two (kept out).
    "AVX2": CpuThresholds(
        math_min_queries=8,
        math_max_qk=0,
        math_max_qk_lowp=256 * 256,
        math_max_scores=2**20,
        reference_max_qk=128 * 128,
        source="AMD EPYC AVX2, 2026-12-02",
    ),
    # No SIMD (ATEN_CPU_CAPABILITY=default on the same AVX2 machine, 2026-12-02): fp32 math
    # 0.71-1.02× SDPA (kept on SDPA), bf16 math 1.2-2.4× up to 256×256; reference ≥ 1.2×
    # tiled up to 512×512 (128×128 kept, as measured on the SIMD machines).
    "DEFAULT": CpuThresholds(
        math_min_queries=8,
        math_max_qk=0,
        math_max_qk_lowp=256 * 256,
        math_max_scores=2**20,
        reference_max_qk=128 * 128,
        source="AMD EPYC, ATEN_CPU_CAPABILITY=default (emulated no-SIMD), 2026-12-02",
    ),
}


def _narrowest(measured: dict[str, CpuThresholds]) -> CpuThresholds:
    rows = list(measured.values())
    return CpuThresholds(
        math_min_queries=max(r.math_min_queries for r in rows),
        math_max_qk=min(r.math_max_qk for r in rows),
        math_max_qk_lowp=min(r.math_max_qk_lowp for r in rows),
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

        >>> thresholds_for("AVX2").math_max_qk_lowp
        16384
        >>> thresholds_for("SVE256") is DEFAULT
        True
    """
    return MEASURED.get(capability.upper(), DEFAULT)


def cpu_thresholds() -> CpuThresholds:
    """The thresholds ``auto`` uses on this machine."""
    return thresholds_for(cpu_capability())
