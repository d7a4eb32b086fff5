"""``qkv backends``: list the attention backends and whether each can run here."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "backends",
        help="list attention backends and their availability",
        description="List every registered attention backend, whether it can run in this "
        "environment (and why not), and what it is for. Use a name with "
        "qkv.attention(..., backend=NAME); 'auto' picks the fastest that serves each call.",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    import qkv

    infos = qkv.attention_backends()
    width = max(len(info.name) for info in infos)
    print(f"{'backend':<{width}}  {'status':<11}  description")
    for info in infos:
        status = "available" if info.available else "unavailable"
        line = f"{info.name:<{width}}  {status:<11}  {info.description}"
        if not info.available:
            line += f" ({info.reason})"
        print(line)
    print(
        f"{'auto':<{width}}  {'available':<11}  the fastest backend that serves each call; "
        "see qkv.explain_backend(q, k, v, **options)"
    )
    return 0
