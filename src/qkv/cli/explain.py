"""``qkv explain "TEXT"``: walk one query token through softmax(q·Kᵀ/√d_k)·V with the model's
own numbers, then check the result against the head output the model computed."""

from __future__ import annotations

import argparse
import json

from qkv.cli.vocab import add_strict_vocab_argument


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from qkv.viz.model_source import add_color_argument, add_model_argument

    parser = subparsers.add_parser(
        "explain",
        help="walk one token through the attention formula with the model's own numbers",
        description="Show, for one query token of TEXT in one layer and head, every step of "
        "attention: the query q, each key k_j, q·k_j, the scaling by 1/√d_k, the mask, exp, "
        "their sum, the softmax weights, each a_j·v_j and their sum z; then check z against "
        "the head output the model itself computed and that the weights sum to 1. Exit code "
        "1 if the check fails.",
    )
    parser.add_argument("text", help="the input text")
    add_model_argument(parser)
    parser.add_argument("--layer", type=int, default=0, help="layer index (default 0)")
    parser.add_argument("--head", type=int, default=0, help="head index (default 0)")
    parser.add_argument(
        "--token",
        default=None,
        help="the query token: an index (negative from the end) or a token string; "
        "default: the last non-special token",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    add_color_argument(parser)
    parser.add_argument(
        "--width", type=int, default=100, help="text width for wrapping (default 100)"
    )
    add_strict_vocab_argument(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from qkv.cli.vocab import check_vocabulary
    from qkv.viz.explain import explain
    from qkv.viz.model_source import emit, open_model, require_tokenizer, wants_color

    opened = open_model(args.model, args.revision)
    tokenizer = require_tokenizer(opened)
    check_vocabulary(tokenizer, args.text, strict=args.strict_vocab, what="the text")
    walk = explain(
        args.text, model=opened.model, tokenizer=tokenizer, model_name=opened.name,
        layer=args.layer, head=args.head, token=args.token,
    )  # fmt: skip
    if args.json:
        emit(json.dumps(walk.to_json_dict(), allow_nan=False))
    else:
        emit(walk.render(color=wants_color(args.color), width=args.width))
    return 0 if walk.ok else 1
