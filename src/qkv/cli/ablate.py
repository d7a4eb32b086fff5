"""``qkv ablate``: what happens without each head? The loss change on a text when one head's
output (``hook_z``) is zeroed, for every head."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from qkv.cli.interp_args import add_common_arguments

    parser = subparsers.add_parser(
        "ablate",
        help="zero-ablate each head: next-token loss change (layer × head heatmap)",
        description="Zero each head's output in turn and report how much the next-token loss "
        "on TEXT rises (positive: the model needs that head here). --start N counts only "
        "predictions from position N on (e.g. the repeated half of an induction sequence).",
    )
    add_common_arguments(parser, picture="the layer × head heatmap")
    parser.add_argument("text", metavar="TEXT", help="the text to measure the loss on")
    parser.add_argument("--start", type=int, default=0, help="first predicting position")
    return parser


def run(args: argparse.Namespace) -> int:
    import torch

    from qkv import interp
    from qkv.cli.interp_args import emit_grid, encode, open_decoder, token_strings
    from qkv.cli.main import CliError

    lm = open_decoder(args, "ablate")
    ids = encode(lm, args.text, "TEXT")
    if ids.shape[1] < 2:
        raise CliError(f"TEXT {args.text!r} is one token; the loss needs at least two")
    if not 0 <= args.start < ids.shape[1] - 1:
        raise CliError(
            f"--start {args.start} leaves nothing to predict in {ids.shape[1]} tokens; "
            f"use 0..{ids.shape[1] - 2}"
        )
    metric = interp.next_token_loss(ids, start=args.start)
    grid = interp.ablation_effects(lm.model, ids, metric)
    with torch.no_grad():
        base = float(metric(lm.model(ids)))
    title = f"{lm.name}: zero-ablation, loss {base:.3f} with every head"
    data = {"model": lm.name, "loss": base, "tokens": token_strings(lm, ids)}
    emit_grid(args, grid, title=title, label="loss change without the head", data=data)
    return 0
