"""``qkv heads``: what each attention head does (previous-token, duplicate-token, induction,
sink share, entropy), measured on repeated random token sequences."""

from __future__ import annotations

import argparse
import json

from qkv.cli.main import CliError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from qkv.viz.model_source import add_color_argument, add_model_argument

    parser = subparsers.add_parser(
        "heads",
        help="score every head: previous-token, duplicate-token, induction, sink, entropy",
        description="Run the model on repeated random token sequences (a random block of "
        "--period tokens, twice, after [CLS] / <bos> when the tokenizer has one) and score "
        "each head: previous-token (attention to i-1), duplicate-token (to i-period), "
        "induction (to i-period+1), sink share (to the first token) and entropy (nats). "
        "Prints layers × heads tables; --out FILE.png draws them, --json prints one object.",
    )
    add_model_argument(parser)
    parser.add_argument("--out", metavar="FILE.png", help="also draw the scores as heatmaps")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument(
        "--period", type=int, default=20, help="length of the repeated block (default 20)"
    )
    parser.add_argument(
        "--sequences", type=int, default=8, help="random sequences to average (default 8)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_color_argument(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from qkv.viz.heads import default_prefix, format_scores, head_scores, vocab_pool
    from qkv.viz.model_source import emit, open_model, wants_color

    if args.period < 2:
        raise CliError(f"--period must be >= 2, got {args.period}")
    if args.sequences < 1:
        raise CliError(f"--sequences must be >= 1, got {args.sequences}")
    if args.out and not args.out.lower().endswith(".png"):
        raise CliError(f"--out {args.out} must end in .png")
    opened = open_model(args.model, args.revision)
    config = getattr(opened.model, "config", None)
    vocab_size = getattr(config, "vocab_size", None)
    if not isinstance(vocab_size, int):
        raise CliError(f"{opened.name} has no config.vocab_size to draw random tokens from")
    scores = head_scores(
        opened.model,
        vocab=vocab_pool(opened.tokenizer, vocab_size),
        period=args.period,
        num_sequences=args.sequences,
        prefix=default_prefix(opened.tokenizer),
        seed=args.seed,
        model_name=opened.name,
    )
    if args.out:
        from qkv.viz.heatmap import plot_head_scores, save_png

        save_png(plot_head_scores(scores), args.out)
    if args.json:
        emit(json.dumps(scores.to_json_dict(), allow_nan=False))
    else:
        emit(format_scores(scores, color=wants_color(args.color)))
        if args.out:
            emit(f"\nwrote {args.out}")
    return 0
