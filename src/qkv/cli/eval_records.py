"""``qkv eval MODEL --data FILE.jsonl``: loss and perplexity on the completion / assistant
tokens of instruction and chat records (the tokens a fine-tune trains on)."""

from __future__ import annotations

import argparse
import math
from typing import Any


def evaluate_records(args: argparse.Namespace, model: Any, tokenizer: Any, directory: Any) -> int:
    """Print loss (nats per counted token), perplexity and the counts, as ``qkv eval`` does."""
    import torch

    from qkv.cli.checks import input_path
    from qkv.data.record_batches import completion_loss, encode_records, sequential_row_batches
    from qkv.data.records import read_records
    from qkv.training.metrics import perplexity
    from qkv.training.record_data import chat_renderer

    path = input_path(args.data, "--data")
    records = read_records(path, chat_template=chat_renderer(tokenizer))
    block_size = model.config.n_positions
    rows = encode_records(
        records, tokenizer, block_size=block_size - 1, mask_prompt=not args.all_tokens,
        source=str(path),
    )  # fmt: skip
    total, counted = 0.0, 0
    with torch.no_grad():
        for inputs, labels in sequential_row_batches(rows, batch_size=args.batch_size):
            summed, n = completion_loss(model(inputs.to(args.device)), labels.to(args.device))
            total, counted = total + summed, counted + n
    loss = total / counted
    what = "all tokens" if args.all_tokens else "completion / assistant tokens"
    rows_out = [
        ("checkpoint", str(directory)),
        ("data", f"{path} ({len(rows):,} records, {counted:,} {what} predicted)"),
        ("loss", f"{loss:.4f} nats/token"),
        ("perplexity", f"{perplexity(loss):.3f}"),
        ("bits/token", f"{loss / math.log(2):.4f}"),
    ]
    if rows.truncated:
        rows_out.append(("truncated", f"{rows.truncated} records longer than the context"))
    for name, value in rows_out:
        print(f"{name:<15} {value}")
    return 0
