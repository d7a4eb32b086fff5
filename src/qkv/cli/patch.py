"""``qkv patch``: which heads carry the answer? Activation patching of every head's output
(``hook_z``) from a corrupted prompt into the clean one, measured by a logit difference."""

from __future__ import annotations

import argparse

from qkv.cli.main import CliError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from qkv.cli.interp_args import add_common_arguments

    parser = subparsers.add_parser(
        "patch",
        help="activation patching: which heads move the answer (layer × head heatmap)",
        description="Run --clean with one head's activation taken from the run on --corrupt, "
        "for every head, and report the logit difference logit(--answer) - logit(--wrong) at "
        "the last position: a head whose patch drops it carries the answer. Both prompts "
        "must have the same number of tokens; --answer and --wrong must be one token each.",
    )
    add_common_arguments(parser, picture="the layer × head heatmap")
    parser.add_argument("--clean", required=True, metavar="TEXT", help="the prompt that works")
    parser.add_argument("--corrupt", required=True, metavar="TEXT", help="the changed prompt")
    parser.add_argument("--answer", required=True, metavar="TOK", help="the right next token")
    parser.add_argument("--wrong", required=True, metavar="TOK", help="the wrong next token")
    parser.add_argument(
        "--hook", default="z", choices=("z", "q", "k", "v", "pattern"),
        help="which head activation to patch (default z, the head's output)",
    )  # fmt: skip
    return parser


def run(args: argparse.Namespace) -> int:
    import torch

    from qkv import interp
    from qkv.cli.interp_args import emit_grid, encode, one_token, open_decoder, token_strings

    lm = open_decoder(args, "patch")
    clean, corrupt = encode(lm, args.clean, "--clean"), encode(lm, args.corrupt, "--corrupt")
    if clean.shape != corrupt.shape:
        raise CliError(
            f"--clean is {clean.shape[1]} tokens {token_strings(lm, clean)} but --corrupt is "
            f"{corrupt.shape[1]} {token_strings(lm, corrupt)}; patching needs the same length"
        )
    answer, wrong = one_token(lm, args.answer, "--answer"), one_token(lm, args.wrong, "--wrong")

    def logit_diff(logits):  # (B, T, vocab) -> scalar
        return (logits[:, -1, answer] - logits[:, -1, wrong]).mean()

    grid = interp.patch_heads(lm.model, clean, corrupt, logit_diff, hook=args.hook)
    with torch.no_grad():
        clean_value = float(logit_diff(lm.model(clean)))
        corrupt_value = float(logit_diff(lm.model(corrupt)))
    note = ""
    n_kv = getattr(lm.model.config, "n_kv_head", None) or lm.model.config.n_head
    if args.hook in ("k", "v") and n_kv != lm.model.config.n_head:
        groups = [interp.query_heads_moved(lm.model, g) for g in range(n_kv)]
        note = f"; columns are key/value heads, moving query heads {groups}"
    title = (
        f"{lm.name}: patch hook_{args.hook} from corrupt; logit diff clean {clean_value:.3f}, "
        f"corrupt {corrupt_value:.3f}{note}"
    )
    data = {
        "model": lm.name, "hook": args.hook, "clean_logit_diff": clean_value,
        "corrupt_logit_diff": corrupt_value, "tokens": token_strings(lm, clean),
    }  # fmt: skip
    emit_grid(args, grid, title=title, label="logit diff after patching", data=data)
    return 0
