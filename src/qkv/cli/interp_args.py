"""What ``qkv patch``, ``qkv lens`` and ``qkv ablate`` share: the model and its tokenizer,
text to token ids, single-token answers, and the PNG / terminal / JSON outputs."""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch
from torch import Tensor

from qkv.cli.main import CliError


def add_common_arguments(parser: argparse.ArgumentParser, *, picture: str) -> None:
    from qkv.cli.model_args import add_model_arguments

    add_model_arguments(parser)
    parser.add_argument("--out", metavar="FILE.png", help=f"draw {picture} into a PNG")
    parser.add_argument("--terminal", action="store_true", help="print a table (the default)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")


def open_decoder(args: argparse.Namespace, command: str) -> Any:
    """The named GPT checkpoint (model in eval mode, tokenizer), or a CliError."""
    from qkv.cli.model_args import model_name, open_language_model

    if args.out and not args.out.lower().endswith(".png"):
        raise CliError(f"--out {args.out} must end in .png")
    lm = open_language_model(model_name(args), args.revision, device="cpu", command=command)
    if lm.tokenizer is None:
        raise CliError(f"{lm.name} has no tokenizer to encode text with; save one beside it")
    lm.model.eval()
    return lm


def encode(lm: Any, text: str, flag: str) -> Tensor:
    """Token ids (1, T) of ``text``, or a CliError when it is empty or too long."""
    ids = list(lm.tokenizer.encode(text, add_special_tokens=False))
    if not ids:
        raise CliError(f"{flag} {text!r} encodes to no tokens; give some text")
    limit = lm.model.config.n_positions
    if len(ids) > limit:
        raise CliError(f"{flag} is {len(ids)} tokens; {lm.name} reads at most {limit}")
    return torch.tensor([ids])


def one_token(lm: Any, text: str, flag: str) -> int:
    """The id of ``text`` if it is exactly one token, else a CliError saying how it splits."""
    ids = list(lm.tokenizer.encode(text, add_special_tokens=False))
    if len(ids) != 1:
        pieces = [lm.tokenizer.decode([i]) for i in ids]
        raise CliError(
            f"{flag} {text!r} is {len(ids)} tokens {pieces}, not one; pass a single token "
            "(with GPT-2 style tokenizers mind the leading space, e.g. ' Paris')"
        )
    return ids[0]


def token_strings(lm: Any, ids: Tensor) -> list[str]:
    return [lm.tokenizer.decode([int(i)]) for i in ids.view(-1)]


def emit_grid(
    args: argparse.Namespace, grid: Tensor, *, title: str, label: str, data: dict
) -> None:
    """A layer × head grid to PNG (--out), JSON (--json) or a terminal table."""
    from qkv.viz.interp_plots import format_layer_head, save_layer_head_png
    from qkv.viz.model_source import emit

    if args.out:
        save_layer_head_png(grid, args.out, title=title, label=label)
    if args.json:
        emit(json.dumps({**data, "grid": grid.tolist()}, allow_nan=False))
        return
    emit(f"{title}\n{label}, layers × heads (* = largest |value|)\n{format_layer_head(grid)}")
    if args.out:
        emit(f"\nwrote {args.out}")
