"""``qkv prepare``: tokenize a corpus into cached token shards, once, before training.

The data flags are ``qkv train``'s (``--data``, ``--tokenizer``, ``--vocab-size``,
``--text-field``, ``--data-split``, ``--skip-bad-files``, ``--bpe-sample-mb``, ``--model``), so a
cluster job can prepare once and every later ``qkv train`` with the same flags (any number of
ranks) finds the shards in the cache at the cost of a ``stat`` per file.
"""

from __future__ import annotations

import argparse

DATA_FLAGS = (
    "data", "tokenizer", "vocab_size", "text_field", "data_split", "skip_bad_files",
    "bpe_sample_mb", "model",
)  # fmt: skip


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from qkv.training.config import add_config_flags

    parser = subparsers.add_parser(
        "prepare",
        help="tokenize a corpus into cached token shards (what train does first)",
        description="Stream a corpus (a text file, a folder of .txt/.md files, a .jsonl or "
        ".parquet file, a saved datasets folder or hf:NAME) through the tokenizer into "
        "memory-mapped token shards in the qkv cache ($QKV_CACHE or ~/.cache/qkv), in bounded "
        "memory. `qkv train` with the same data flags then starts at once.",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    add_config_flags(parser, only=DATA_FLAGS)
    return parser


def run(args: argparse.Namespace) -> int:
    import time

    from qkv.cli.checks import input_path
    from qkv.data.prepare_stream import prepare_corpus
    from qkv.training.config import TrainConfig, given_flags
    from qkv.training.prepare import corpus_spec, prepare_options

    if args.data is not None and not args.data.startswith("hf:"):
        args.data = str(input_path(args.data, "--data"))
    config = TrainConfig(**given_flags(args))
    started = time.perf_counter()
    done = prepare_corpus(
        corpus_spec(config, quiet=args.quiet), prepare_options(config), quiet=args.quiet
    )
    manifest = done.manifest
    how = "found in the cache" if done.cache_hit else "prepared"
    skipped = f", {len(done.skipped)} bad files skipped" if done.skipped else ""
    print(
        f"{how}: {manifest['tokens']:,} tokens ({manifest['dtype']}) of {manifest['documents']:,} "
        f"documents in {len(manifest['shards'])} shards{skipped}, vocabulary "
        f"{done.tokenizer.get_vocab_size():,}, in {time.perf_counter() - started:.2f} s: "
        f"{done.folder}"
    )
    return 0
