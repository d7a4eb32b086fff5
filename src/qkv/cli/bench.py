"""``qkv bench``: time the attention backends on each variant and show what ``auto`` picks."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark the attention backends (--quick: under a minute)",
        description="Time qkv's attention backends (auto, sdpa, flash-tiles, tiled, reference) "
        "forward on each variant (causal, GQA, masks, sliding window, ALiBi, softcap, dropout, "
        "weights, decoding) and show which backend auto chose and why. Without --quick it runs the "
        "full benchmarks/attention.py grid (N up to 16k, peak memory per case; ~20 minutes).",
    )
    parser.add_argument("--quick", action="store_true", help="a few small shapes, < 60 s")
    parser.add_argument("--seq-len", type=int, default=512, help="keys per call in --quick")
    parser.add_argument("--heads", type=int, default=8, help="query heads in --quick")
    parser.add_argument("--head-dim", type=int, default=64, help="head dim in --quick")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="full run: keep rows whose label contains TEXT (e.g. 'N=4096', 'bf16'); repeatable",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    for name in ("seq_len", "heads", "head_dim", "repeats"):
        value = getattr(args, name)
        if value < 1:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} must be >= 1, got {value}")
    from qkv.attention.thresholds import cpu_capability, cpu_thresholds
    from qkv.bench.hardware import machine_line
    from qkv.bench.quick import quick_rows

    if args.quick:
        limits = cpu_thresholds()
        print(
            f"qkv bench --quick: forward time per backend (median of {args.repeats}); "
            f"{machine_line()}"
        )
        print(
            f"measured on CPU capability {cpu_capability()}; auto's CPU thresholds: "
            f"{limits.source} (math up to Nq·Nk {limits.math_max_qk} in fp32, "
            f"{limits.math_max_qk_lowp} in bf16/fp16; reference up to {limits.reference_max_qk})"
        )
        lines = quick_rows(
            n=args.seq_len, heads=args.heads, dim=args.head_dim, repeats=args.repeats
        )
        print("\n".join(lines))
        print("'refuses': that backend cannot serve the call (qkv.explain_backend says why).")
        return 0
    from qkv.bench.run import main as full_main

    argv = [arg for text in args.only for arg in ("--only", text)]
    return full_main(argv)
