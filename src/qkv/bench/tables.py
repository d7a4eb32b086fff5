"""The full attention benchmark's grid and table (``benchmarks/attention.py``, ``qkv bench``):
every case in its own subprocess, with peak memory, and the fit of peak memory against N."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from qkv.attention import explain_backend
from qkv.bench.attention_cases import PEER_IMPLS, QKV_IMPLS, Case, Result
from qkv.bench.hardware import matmul_gflops
from qkv.bench.measure import measure_in_subprocess

FULL_SIZES = (1024, 4096, 16384)
VARIANT_SIZES = (4096, 16384)
SLOPE_SIZES = (1024, 2048, 4096, 8192, 16384)
MAIN_IMPLS = ("auto", "flash-tiles", "tiled", "sdpa", "reference", "torch-sdpa", "naive")
# auto chooses flash-tiles for window and ALiBi, tiled for softcap: both are measured (each
# where it serves) and the row's "ours" is the one auto chose.
VARIANT_IMPLS = ("flash-tiles", "tiled", "sdpa+mask", "flex")
SLOPE_IMPLS = ("flash-tiles", "tiled")  # the O(N)-memory backends of the memory-slope fit


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
    q = torch.empty(1, 8, row.n, 64, dtype=getattr(torch, row.dtype))
    q.requires_grad_(row.backward)
    return explain_backend(q, q, q, **row.case("auto").options()).backend


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
                f"  {row.label:<34} {impl:<11} {_cell(result, True):<28} "
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
        chose = _auto_choice(row)
        ours_name = "auto" if "auto" in row.impls else chose
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
        lines.append("| " + " | ".join([row.label, *cells, chose, gflops, ratio]) + " |")
    if notes:
        lines.append("")
        lines += [f"{mark} {why}" for why, mark in notes.items()]
    return lines, results


def memory_slope(results: dict[tuple[Row, str], Result], impl_name: str = "tiled") -> str:
    """Least-squares fit of ``impl_name``'s fwd+bwd peak memory against N (causal fp32 plain
    rows)."""
    points = [
        (row.n, r.peak_bytes / 2**20)
        for (row, impl), r in results.items()
        if impl == impl_name
        and row.variant == "plain"
        and row.causal
        and row.backward
        and row.dtype == "float32"
        and r.peak_bytes is not None
        and not r.error
    ]
    if len(points) < 3:
        return f"{impl_name} peak-memory slope: needs at least three sizes"
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
        f"{impl_name} fwd+bwd peak memory vs N (causal, fp32, 8 heads, d=64): {listed}; linear fit "
        f"{slope * 1024:.1f} MiB per 1k tokens + {intercept:.0f} MiB, R² = "
        f"{1 - ss_res / ss_tot:.3f} (8 fp32 N×N score matrices at N=16k would be "
        f"{square * 16384**2 / 1024:,.0f} GiB)"
    )


def quick_full_rows() -> list[Row]:
    """A small version of the full grid (for --quick of benchmarks/attention.py)."""
    rows = [r for r in full_grid(sizes=(512,)) if r.n == 512]
    return rows + [
        Row(
            variant=v,
            causal=True,
            n=1024,
            dtype="float32",
            backward=True,
            impls=("flash-tiles", "tiled", "sdpa+mask"),
        )
        for v in ("window", "alibi")
    ]


__all__ = ["Row", "full_grid", "memory_slope", "quick_full_rows", "run_full"]
