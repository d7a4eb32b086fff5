"""``qkv eval MODEL --data PATH``: loss, perplexity and bits per character / byte on a text.

MODEL is a run or checkpoint folder, a Hugging Face folder or a hub id (``--model``,
``--revision``: see :mod:`qkv.cli.model_args`).

Every token after the first is predicted once (consecutive context windows). Bits per
character (char tokenizer) = total nats / characters predicted / ln 2; bits per byte (BPE) =
total nats / UTF-8 bytes predicted / ln 2, comparable across tokenizers.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from qkv.cli.eval_data import add_data_arguments
from qkv.cli.vocab import add_strict_vocab_argument


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from qkv.cli.model_args import add_model_arguments

    parser = subparsers.add_parser(
        "eval",
        help="evaluate a trained model on a text",
        description="Cross-entropy loss, perplexity and bits per character (char tokenizer) or "
        "per byte (BPE) of a causal language model (a `qkv train` checkpoint, a Hugging Face "
        "folder or a hub id) on what `qkv train --data` reads (text, folder, JSONL, Parquet, "
        "datasets), streamed into cached token shards with the model's tokenizer.",
    )
    add_model_arguments(parser)
    add_data_arguments(parser)
    parser.add_argument(
        "--split",
        choices=("all", "train", "val"),
        default="all",
        help="evaluate all of the text, or its first 90%% / last 10%% (default: all)",
    )
    parser.add_argument("--val-fraction", type=float, default=0.1, help="for --split")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    parser.add_argument(
        "--all-tokens",
        action="store_true",
        help="JSONL records (--data FILE.jsonl): count prompt tokens too, not only the "
        "completion / assistant ones",
    )
    add_strict_vocab_argument(parser)
    return parser


def token_bytes(backend: Any) -> list[int]:
    """UTF-8 bytes each token id stands for (0 for special tokens).

    Byte-level BPE writes each byte as one printable character, so a token's byte count is
    its string's length; a char-level token is one character of len(char.encode()) bytes.
    """
    import json

    specials = {t.content for t in backend.get_added_tokens_decoder().values()}
    byte_level = json.loads(backend.to_str())["model"]["type"] == "BPE"
    sizes = []
    for index in range(backend.get_vocab_size()):
        token = backend.id_to_token(index) or ""
        if token in specials:
            sizes.append(0)
        else:
            sizes.append(len(token) if byte_level else len(token.encode("utf-8")))
    return sizes


def unit_sizes(tokenizer: Any) -> list[int]:
    """Characters (char tokenizer) or UTF-8 bytes (BPE) each token id stands for: the
    denominators of bits per character / byte. Special tokens (end-of-text) stand for none,
    except a char tokenizer's [UNK], which stands for one character."""
    if _char_level(tokenizer):
        specials = {t.content for t in tokenizer.get_added_tokens_decoder().values()}
        unk = tokenizer.special_tokens.get("unk")
        return [0 if (token := tokenizer.id_to_token(i)) in specials and token != unk else 1
                for i in range(tokenizer.get_vocab_size())]  # fmt: skip
    return token_bytes(tokenizer.backend)


def _char_level(tokenizer: Any) -> bool:
    import json

    return json.loads(tokenizer.to_str())["model"]["type"] == "WordLevel"


def evaluate_text(model: Any, tokens: Any, *, block_size: int, batch_size: int, device: str,
                  sizes: list[int] | None = None) -> tuple[float, int, int]:  # fmt: skip
    """(total nats, tokens predicted, units predicted) of a causal LM over ``tokens`` (any
    length: windows are read from it batch by batch); ``sizes``: units per token id."""
    import torch
    import torch.nn.functional as F

    from qkv.data.batches import sequential_windows

    total, predicted, units = 0.0, 0, 0
    table = torch.tensor(sizes or [1] * model.config.vocab_size, dtype=torch.int64)  # (V,)
    with torch.inference_mode():
        for inputs, targets in sequential_windows(
            tokens, block_size=block_size, batch_size=batch_size
        ):
            logits = model(inputs.to(device))  # (B, T, V)
            nats = F.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1).to(device),
                reduction="sum",
            )  # fmt: skip
            total += float(nats)
            predicted += targets.numel()
            units += int(table[targets.reshape(-1)].sum())
    return total, predicted, units


def run(args: argparse.Namespace) -> int:
    from qkv.cli.checks import device, eval_fits_memory
    from qkv.cli.eval_data import count_unknown, is_records, prepared_tokens, warn_unknown
    from qkv.cli.main import CliError
    from qkv.cli.model_args import model_name, open_language_model
    from qkv.data.corpus import split_point
    from qkv.training.metrics import perplexity

    if args.batch_size < 1:
        raise CliError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not 0 < args.val_fraction < 1:
        raise CliError(f"--val-fraction must be in (0, 1), got {args.val_fraction}")
    args.device = device(args.device)
    lm = open_language_model(model_name(args), args.revision, device=args.device, command="eval")
    model, tokenizer, directory = lm.model, lm.tokenizer, lm.directory
    if not args.data.startswith("hf:") and is_records(args.data):  # completions only
        from qkv.cli.eval_records import evaluate_records

        return evaluate_records(args, model, tokenizer, directory)
    prepared = prepared_tokens(args, tokenizer)
    tokens = prepared.tokens
    cut = split_point(len(tokens), args.val_fraction)
    tokens = {"all": tokens, "train": tokens.view(0, cut),
              "val": tokens.view(cut, len(tokens))}[args.split]  # fmt: skip
    if len(tokens) < 2:
        raise CliError(f"{args.data} ({args.split}) has {len(tokens)} tokens; need at least 2")
    unknown = count_unknown(tokenizer, tokens)
    if unknown:
        warn_unknown(tokenizer, prepared, unknown, len(tokens), strict=args.strict_vocab,
                     what=f"--data {args.data}")  # fmt: skip
    eval_fits_memory(
        len(tokens), block_size=model.config.n_positions, batch_size=args.batch_size,
        vocab_size=model.config.vocab_size, device=args.device,
    )  # fmt: skip
    unit = "character" if _char_level(tokenizer) else "byte"
    total, predicted, units = evaluate_text(
        model, tokens, block_size=model.config.n_positions, batch_size=args.batch_size,
        device=args.device, sizes=unit_sizes(tokenizer),
    )  # fmt: skip
    loss = total / predicted
    rows = [
        ("checkpoint", str(directory)),
        ("data", f"{args.data} ({args.split}, {predicted:,} tokens predicted)"),
        ("loss", f"{loss:.4f} nats/token"),
        ("perplexity", f"{perplexity(loss):.3f}"),
        (f"bits/{unit}", f"{total / max(units, 1) / math.log(2):.4f}"),
    ]
    if unknown:
        share = 100 * unknown / len(tokens)
        rows.append(("unknown tokens", f"{unknown:,} ({share:.1f}%) [UNK]: placeholders, not text"))
    for name, value in rows:
        print(f"{name:<15} {value}")
    return 0
