"""What ``qkv eval --data`` reads: the sources ``qkv train`` reads, through the same streaming
path (:mod:`qkv.data.prepare_stream`), encoded with the model's tokenizer into cached shards
and read back through memmaps, so a corpus of any size is evaluated in bounded memory and a
second evaluation (or one on the corpus the model was trained on) costs a ``stat`` per file.

A ``.jsonl`` file whose first record is an instruction / chat record (``prompt``,
``messages`` or ``instruction``) is evaluated as records instead (:mod:`qkv.cli.eval_records`).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import Any

import numpy as np

RECORD_KEYS = ("prompt", "messages", "instruction")
_SCAN = 1 << 24  # ids compared at a time when counting unknown tokens
_SAMPLE_CHARS = 1 << 22  # characters of text read to name the unknown characters


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        required=True,
        help="what qkv train reads: a UTF-8 text file, a folder of .txt/.md files, a .jsonl "
        "(--text-field; instruction / chat records are evaluated on their completions) or "
        ".parquet file, a saved datasets folder or hf:NAME",
    )
    parser.add_argument("--text-field", default="text", help="JSONL / Parquet / datasets column")
    parser.add_argument("--data-split", default="train", help="split of a datasets --data")
    parser.add_argument(
        "--skip-bad-files", action="store_true", help="skip non-UTF-8 files of a --data folder"
    )


def is_records(data: str) -> bool:
    """True for a ``.jsonl`` file whose first record is an instruction / chat record."""
    from pathlib import Path

    from qkv.data.records import is_records_file

    if not is_records_file(data) or not Path(data).is_file():
        return False
    with open(data, "rb") as handle:
        for raw in handle:
            if raw.strip():
                try:
                    record = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    return True  # the records reader names the line and the problem
                return not isinstance(record, dict) or any(k in record for k in RECORD_KEYS)
    return True


def prepared_tokens(args: argparse.Namespace, tokenizer: Any) -> Any:
    """The :class:`~qkv.data.prepare_stream.PreparedCorpus` of ``--data`` under ``tokenizer``
    (encoded on a cache miss; the progress bar shows on a terminal)."""
    from qkv.cli.checks import input_path
    from qkv.data.prepare_stream import PrepareOptions, prepare_corpus
    from qkv.data.sources import SourceSpec

    data = args.data if args.data.startswith("hf:") else str(input_path(args.data, "--data"))
    spec = SourceSpec(
        data=data,
        text_field=args.text_field,
        split=args.data_split,
        skip_bad_files=args.skip_bad_files,
    )
    return prepare_corpus(spec, PrepareOptions(), tokenizer=tokenizer,
                          quiet=not sys.stderr.isatty())  # fmt: skip


def count_unknown(tokenizer: Any, tokens: Any) -> int:
    """How many of ``tokens`` (ids, any length: read in slices) are the unknown token."""
    unk = tokenizer.token_id("unk")
    if unk is None:
        return 0
    return sum(
        int(np.count_nonzero(tokens[start : start + _SCAN] == unk))
        for start in range(0, len(tokens), _SCAN)
    )


def warn_unknown(tokenizer: Any, prepared: Any, count: int, total: int, *, strict: bool,
                 what: str) -> None:  # fmt: skip
    """Say (or with ``strict`` refuse) that ``count`` of ``total`` ids are unknown, naming the
    characters found in the first few MB of the text (the whole text is never held)."""
    from qkv.cli.vocab import check_vocabulary

    pieces, seen = [], 0
    for document in prepared.source.documents():
        for piece in document:
            pieces.append(piece[: _SAMPLE_CHARS - seen])
            seen += len(pieces[-1])
            if seen >= _SAMPLE_CHARS:
                break
        if seen >= _SAMPLE_CHARS:
            break
        pieces.append("\n")
    report = tokenizer.unknown_report("".join(pieces))
    check_vocabulary(tokenizer, "", strict=strict, what=what,
                     report=replace(report, count=count, total=total))  # fmt: skip
