"""Command line of the full attention benchmark (``benchmarks/attention.py``, ``qkv bench``)."""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from qkv.bench.hardware import machine_line
from qkv.bench.tables import (
    SLOPE_IMPLS,
    SLOPE_SIZES,
    Row,
    full_grid,
    memory_slope,
    quick_full_rows,
    run_full,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/attention.py",
        description="Time and peak memory of qkv's attention backends beside PyTorch SDPA, a "
        "naive softmax(q·kᵀ)·v, SDPA with explicit masks and FlexAttention; one fresh "
        "subprocess per case. Prints one markdown table.",
    )
    parser.add_argument("--quick", action="store_true", help="N=512 grid only (~1-2 minutes)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="keep rows whose label contains TEXT (all given texts must match)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed runs per case after the first (default: by N)",
    )
    parser.add_argument(
        "--max-gb",
        type=float,
        default=16.0,
        help="skip cases whose N×N tensors would exceed this (default 16)",
    )
    parser.add_argument(
        "--no-slope",
        action="store_true",
        help="skip the extra flash-tiles/tiled sizes of the memory-slope fit",
    )
    parser.add_argument(
        "--no-ab", action="store_true", help="skip the interleaved auto-vs-SDPA section"
    )
    parser.add_argument("--output", type=Path, help="also write the report (markdown) here")
    return parser


def _slope_rows(rows: list[Row]) -> list[Row]:
    have = {(r.n, r.variant, r.causal, r.dtype, r.backward) for r in rows}
    extra = []
    for n in SLOPE_SIZES:
        if (n, "plain", True, "float32", True) not in have:
            extra.append(
                Row(
                    variant="plain",
                    causal=True,
                    n=n,
                    dtype="float32",
                    backward=True,
                    impls=SLOPE_IMPLS,
                )
            )
    return extra


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    rows = quick_full_rows() if args.quick else full_grid()
    for text in args.only:
        rows = [r for r in rows if text in r.label]
    if not rows:
        raise ValueError(
            f"--only {args.only} matches no benchmark row; see the labels of a "
            "--quick run, e.g. 'N=4096', 'bf16', 'window', 'fwd+bwd'"
        )
    if not args.quick and not args.no_slope and not args.only:
        rows += _slope_rows(rows)
    started = time.perf_counter()
    machine = machine_line()
    print(
        f"# attention benchmark, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        file=sys.stderr,
    )
    lines, results = run_full(
        rows,
        max_bytes=args.max_gb * 2**30,
        repeats=args.repeats,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    ab_lines: list[str] = []
    if not args.quick and not args.no_ab:
        from qkv.bench.interleaved import interleaved_rows

        ab_lines = [
            "",
            "`auto` against PyTorch SDPA measured interleaved in one process (A/B/B/A rounds: "
            "7 at N ≤ 4k, 3 at 16k; medians), where the per-process cells above are one or "
            "two runs each:",
            "",
            *interleaved_rows(rows, log=lambda line: print(line, file=sys.stderr, flush=True)),
        ]
    report = [
        f"Machine: {machine} (at start); "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
        f"total {time.perf_counter() - started:.0f} s.",
        "",
        "Cells: median time · peak RSS growth of the first call in a fresh process "
        "(q, k, v excluded; masks and compilation included). B=1, 8 heads, d=64. "
        "GFLOP/s by FlashAttention's count "
        "(4·B·H·N²·d forward, ×3.5 fwd+bwd, halved for causal) for auto (on variant rows: "
        "the backend auto chose), beside a 2048³ matmul in the same dtype. "
        "window = causal sliding window of 512; sdpa+mask = SDPA given the variant as an "
        "explicit float mask (mask built before timing, counted in memory); flex = "
        "torch.compile'd FlexAttention (forward only on CPU).",
        "",
        *lines,
        "",
        *(memory_slope(results, impl) for impl in SLOPE_IMPLS),
        *ab_lines,
    ]
    print("\n".join(report))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text("\n".join(report) + "\n")
    _run_gpu_benchmark()
    return 0


def _run_gpu_benchmark() -> None:
    """With CUDA, also run benchmarks/attention_gpu.py (Triton vs SDPA and Flex), if present."""
    import runpy

    import torch

    if not torch.cuda.is_available():
        return
    path = Path(__file__).resolve().parents[3] / "benchmarks" / "attention_gpu.py"
    if path.exists():
        runpy.run_path(str(path), run_name="__main__")
    else:
        print(f"(CUDA is available but {path} is missing: no GPU benchmark)")


if __name__ == "__main__":
    sys.exit(main())
