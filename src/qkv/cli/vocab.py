"""Saying what the model will not see: characters of the user's text that the tokenizer maps
to its unknown token. ``eval``, ``generate``, ``explain`` and ``show`` warn on stderr with the
count and the first examples, or, with ``--strict-vocab``, refuse (one line, exit code 2)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from qkv.cli.main import CliError


def add_strict_vocab_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strict-vocab",
        action="store_true",
        help="refuse text with characters the tokenizer cannot represent (they become [UNK]) "
        "instead of warning",
    )


def check_vocabulary(
    tokenizer: Any, text: str, *, strict: bool, what: str, report: Any = None
) -> Any:
    """Warn (or with ``strict`` refuse) when ``text`` has unknown tokens; returns the report.

    ``what`` names the text in the message (``--prompt``, ``--data corpus.txt``, ...);
    ``report``: an :class:`~qkv.data.unknown.UnknownReport` made already (then ``text`` is
    not read), e.g. counted over a corpus too big to hold.
    """
    report = tokenizer.unknown_report(text) if report is None else report
    if report.count:
        message = f"{what}: {report.describe()}"
        if strict:
            raise CliError(f"{message} (--strict-vocab); pass text in the model's alphabet")
        print(f"qkv: warning: {message}; --strict-vocab refuses such text", file=sys.stderr)
    return report
