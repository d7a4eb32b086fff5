"""``qkv lens``: the logit lens. Each layer's residual stream through the final norm
(recomputed from that residual) and the unembedding: the top tokens per layer and position."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from qkv.cli.interp_args import add_common_arguments

    parser = subparsers.add_parser(
        "lens",
        help="logit lens: top next tokens after every layer, per position",
        description="Read the residual stream before each layer (and after the last) through "
        "the final norm and the unembedding; print the top token per layer and position. "
        "The last row is the model's own prediction.",
    )
    add_common_arguments(parser, picture="the top token's probability per layer and position")
    parser.add_argument("text", metavar="TEXT", help="the text to read")
    parser.add_argument("--top", type=int, default=3, help="tokens kept per cell (JSON)")
    return parser


def run(args: argparse.Namespace) -> int:
    from qkv import interp
    from qkv.cli.interp_args import encode, open_decoder, token_strings
    from qkv.cli.main import CliError
    from qkv.viz.interp_plots import format_lens
    from qkv.viz.model_source import emit

    if args.top < 1:
        raise CliError(f"--top must be >= 1, got {args.top}")
    lm = open_decoder(args, "lens")
    ids = encode(lm, args.text, "TEXT")
    probs = interp.logit_lens(lm.model, ids)[:, 0].softmax(-1)  # (L + 1, T, vocab)
    best, where = probs.topk(min(args.top, probs.shape[-1]), dim=-1)  # (L + 1, T, k)
    top = [[token_strings(lm, cell) for cell in row] for row in where]
    tokens = token_strings(lm, ids)
    if args.out:
        from qkv.viz.heatmap import _pyplot, save_png

        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(1.5 + 0.9 * len(tokens), 1.0 + 0.5 * len(top)))
        ax.imshow(best[..., 0].numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        for row, cells in enumerate(top):
            for col, cell in enumerate(cells):
                ax.text(col, row, cell[0][:8], ha="center", va="center", fontsize=7, color="w")
        ax.set_xticks(range(len(tokens)), [t[:8] for t in tokens], rotation=45, fontsize=7)
        ax.set_yticks(range(len(top)), ["embed"] + [str(r) for r in range(1, len(top))])
        ax.set_ylabel("residual before layer")
        ax.set_title(f"{lm.name}: logit lens (colour: top token's probability)", fontsize=9)
        fig.tight_layout()
        save_png(fig, args.out)
    if args.json:
        emit(json.dumps({
            "model": lm.name, "tokens": tokens, "top_tokens": top,
            "top_probabilities": best.tolist(),
        }))  # fmt: skip
        return 0
    emit(f"{lm.name}: logit lens, top next token per layer (rows) and position (columns)")
    emit(format_lens(top, tokens))
    if args.out:
        emit(f"\nwrote {args.out}")
    return 0
