"""Entry point of the ``qkv`` command.

Each subcommand lives in its own module ``qkv.cli.<name>`` exposing
``add_parser(subparsers) -> argparse.ArgumentParser`` and ``run(args) -> int``. Modules keep
heavy imports inside ``run`` so ``qkv --help`` stays fast. Errors a user can fix are raised as
:class:`CliError` (or ValueError / FileNotFoundError) and printed as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS = (
    "bench",
    "backends",
    "train",
    "generate",
    "chat",
    "eval",
    "explain",
    "show",
    "heads",
    "demo",
)


class CliError(Exception):
    """A user-facing error: printed as ``qkv: error: <message>`` with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2 (argparse's own convention)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from qkv import __version__

    parser = _Parser(
        prog="qkv",
        description="Transformer self-attention: attention kernels, models, training, "
        "generation and attention visualisation.",
    )
    parser.add_argument("--version", action="version", version=f"qkv {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"qkv.cli.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"qkv.cli.{name}":
                continue  # subcommand not part of this build
            raise
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("qkv: interrupted", file=sys.stderr)
        return 130
    except (CliError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"qkv: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
