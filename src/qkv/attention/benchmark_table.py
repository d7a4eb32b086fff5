"""The attention benchmark's grids and tables: the full run of ``benchmarks/attention.py``
(every case in its own subprocess, with peak memory) and the quick in-process run of
``qkv bench --quick``."""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import torch

from qkv.attention.benchmark import (
    PEER_IMPLS,
    QKV_IMPLS,
    Case,
    Result,
    matmul_gflops,
    measure,
    measure_in_subprocess,
)

FULL_SIZES = (1024, 4096, 16384)
VARIANT_SIZES = (4096, 16384)
SLOPE_SIZES = (1024, 2048, 4096, 8192, 16384)
MAIN_IMPLS = ("auto", "tiled", "sdpa", "reference", "torch-sdpa", "naive")
VARIANT_IMPLS = ("tiled", "sdpa+mask", "flex")  # auto chooses tiled for all three


@dataclass(frozen=True, kw_only=True)
class Row:
    """One problem (all implementations of it share a row)."""

    variant: str
    causal: bool
    n: int
    dtype: str
    backward: bool
    impls: tuple[str, ...]

    @property
    def label(self) -> str:
        mode = "causal" if self.causal else "full"
        kind = mode if self.variant == "plain" else f"{self.variant}+{mode}"
        dtype = {"float32": "fp32", "bfloat16": "bf16"}.get(self.dtype, self.dtype)
        return f"{kind} N={self.n} {dtype} {'fwd+bwd' if self.backward else 'fwd'}"

    def case(self, impl: str) -> Case:
        return Case(
            impl=impl,
            n=self.n,
            dtype=self.dtype,
            causal=self.causal,
            variant=self.variant,
            backward=self.backward,
        )


def full_grid(sizes: Iterable[int] = FULL_SIZES) -> list[Row]:
    rows = []
    for n in sizes:
        for dtype in ("float32", "bfloat16"):
            for causal in (False, True):
                for backward in (False, True):
                    rows.append(
                        Row(
                            variant="plain",
                            causal=causal,
                            n=n,
                            dtype=dtype,
                            backward=backward,
                            impls=MAIN_IMPLS,
                        )
                    )
    for n in VARIANT_SIZES:
        for variant in ("window", "alibi", "softcap"):
            for backward in (False, True):
                rows.append(
                    Row(
                        variant=variant,
                        causal=True,
                        n=n,
                        dtype="float32",
                        backward=backward,
                        impls=VARIANT_IMPLS,
                    )
                )
    return rows


def repeats_for(n: int) -> int:
    return 0 if n >= 16384 else (2 if n >= 4096 else 5)


def _cell(result: Result | None, peak: bool) -> str:
    if result is None:
        return "—"
    if result.error:
        return f"✗ {result.error}"
    text = (
        f"{result.median * 1e3:,.0f} ms"
        if result.median >= 0.01
        else (f"{result.median * 1e3:.2f} ms")
    )
    if peak and result.peak_bytes is not None:
        text += f" · {max(result.peak_bytes, 0) / 2**20:,.0f} MiB"
    return text


def _auto_choice(row: Row) -> str:
    """What auto picks for this row's problem (decided from shapes, nothing is run)."""
    import qkv

    q = torch.empty(1, 8, row.n, 64, dtype=getattr(torch, row.dtype))
    q.requires_grad_(row.backward)
    return qkv.explain_backend(q, q, q, **row.case("auto").options()).backend


def _skip(case: Case, max_bytes: float) -> str | None:
    reason = case.refusal()
    if reason is not None:
        return reason
    if case.estimated_bytes() > max_bytes:
        return f"skipped: needs ~{case.estimated_bytes() / 2**30:.0f} GiB of N×N tensors"
    return None


def run_full(
    rows: list[Row], *, max_bytes: float, repeats: int | None, log: Callable[[str], None]
) -> tuple[list[str], dict[tuple[Row, str], Result]]:
    """Measure every (row, implementation) in a subprocess; return markdown lines + results."""
    results: dict[tuple[Row, str], Result] = {}
    notes: dict[str, str] = {}
    for row in rows:
        for impl in row.impls:
            case = row.case(impl)
            why = _skip(case, max_bytes)
            if why is not None:
                notes.setdefault(why, f"[{len(notes) + 1}]")
                results[(row, impl)] = Result(case=case, error=notes[why])
                continue
            count = repeats if repeats is not None else repeats_for(row.n)
            started = time.perf_counter()
            result = measure_in_subprocess(case, count)
            results[(row, impl)] = result
            log(
                f"  {row.label:<34} {impl:<10} {_cell(result, True):<28} "
                f"({time.perf_counter() - started:.0f} s)"
            )
    ceilings = {d: matmul_gflops(getattr(torch, d)) for d in {r.dtype for r in rows}}
    impls = [i for i in (*QKV_IMPLS, *PEER_IMPLS) if any(i in r.impls for r in rows)]
    header = [
        "problem",
        *impls,
        "auto chose",
        "GFLOP/s (matmul ceiling)",
        "qkv vs peer (speed, memory)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        ours_name = "auto" if "auto" in row.impls else "tiled"
        ours = results.get((row, ours_name))
        peer_name = "torch-sdpa" if row.variant == "plain" else "sdpa+mask"
        peer = results.get((row, peer_name))
        ratio = "—"
        if ours and peer and ours.times and peer.times:
            ratio = f"{ours_name}: {peer.median / ours.median:.2f}× {peer_name} speed"
            if ours.peak_bytes is not None and peer.peak_bytes and peer.peak_bytes > 0:
                ratio += f", {max(ours.peak_bytes, 0) / peer.peak_bytes:.2f}× its memory"
        gflops = "—"
        if ours and ours.times:
            gflops = f"{ours.gflops:.0f} ({ceilings[row.dtype]:.0f})"
        cells = [_cell(results.get((row, i)), True) if i in row.impls else "" for i in impls]
        chose = _auto_choice(row)
        lines.append("| " + " | ".join([row.label, *cells, chose, gflops, ratio]) + " |")
    if notes:
        lines.append("")
        lines += [f"{mark} {why}" for why, mark in notes.items()]
    return lines, results


def memory_slope(results: dict[tuple[Row, str], Result]) -> str:
    """Least-squares fit of tiled fwd+bwd peak memory against N (causal fp32 plain rows)."""
    points = [
        (row.n, r.peak_bytes / 2**20)
        for (row, impl), r in results.items()
        if impl == "tiled"
        and row.variant == "plain"
        and row.causal
        and row.backward
        and row.dtype == "float32"
        and r.peak_bytes is not None
        and not r.error
    ]
    if len(points) < 3:
        return "tiled peak-memory slope: needs at least three sizes"
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    intercept = mean_y - slope * mean_x
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in points)
    ss_tot = sum((y - mean_y) ** 2 for _, y in points) or 1.0
    listed = ", ".join(f"N={x}: {y:.0f} MiB" for x, y in sorted(points))
    square = 8 * 4 / 2**20  # one fp32 N×N score matrix of 8 heads, MiB per N²
    return (
        f"tiled fwd+bwd peak memory vs N (causal, fp32, 8 heads, d=64): {listed}; linear fit "
        f"{slope * 1024:.1f} MiB per 1k tokens + {intercept:.0f} MiB, R² = "
        f"{1 - ss_res / ss_tot:.3f} (8 fp32 N×N score matrices at N=16k would be "
        f"{square * 16384**2 / 1024:,.0f} GiB)"
    )


def machine_line() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, load average {load[0]:.1f} / {load[1]:.1f}"
    )


# ---- qkv bench --quick ---------------------------------------------------------------------
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
QUICK_BACKENDS = ("auto", "sdpa", "tiled", "reference")


def _median_time(q, k, v, backend: str, options: dict, repeats: int) -> float:
    import qkv

    options = dict(options)
    run = qkv.attention_with_weights if options.pop("need_weights", False) else qkv.attention
    times = []
    with torch.no_grad():
        run(q, k, v, backend=backend, **options)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            run(q, k, v, backend=backend, **options)
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def quick_rows(n: int = 512, heads: int = 8, dim: int = 64, repeats: int = 3) -> list[str]:
    """Time each backend on each variant in-process (forward); say what auto chose and why."""
    import qkv
    from qkv.attention.alibi import alibi_slopes
    from qkv.attention.backends import get_backend
    from qkv.attention.validate import validate

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
        q = torch.randn(1, heads, q_len, dim)
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
        choice = qkv.explain_backend(q, k, v, **spec)
        shape = f"{heads}/{kv_heads}×{q_len}×{n}×{dim}"
        lines.append("| " + " | ".join([name, shape, *cells, choice.backend, choice.reason]) + " |")
    return lines


def quick_full_rows() -> list[Row]:
    """A small version of the full grid (for --quick of benchmarks/attention.py)."""
    rows = [replace(r, impls=r.impls) for r in full_grid(sizes=(512,))]
    return [r for r in rows if r.n == 512] + [
        Row(
            variant=v,
            causal=True,
            n=1024,
            dtype="float32",
            backward=True,
            impls=("tiled", "sdpa+mask"),
        )
        for v in ("window", "alibi")
    ]


__all__ = ["full_grid", "measure", "memory_slope", "quick_rows", "run_full"]
