"""Entry point of the ``qkv`` command.

Each subcommand lives in its own module ``qkv.cli.<name>`` exposing
``add_parser(subparsers) -> argparse.ArgumentParser`` and ``run(args) -> int``. Modules keep
heavy imports inside ``run`` so ``qkv --help`` stays fast. Errors a user can fix are raised as
:class:`CliError` (or ValueError / FileNotFoundError) and printed as one line with exit code 2;
so are faults of the environment: a full or read-only disk, a permission, a symlink loop, an
I/O error (any OSError, described by :func:`qkv.io.files.describe_os_error`) and memory that
cannot be allocated. A closed stdout (``qkv generate ... | head``) ends output quietly.
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
    "prepare",
    "merge",
    "generate",
    "chat",
    "eval",
    "explain",
    "show",
    "heads",
    "patch",
    "lens",
    "ablate",
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
        return _fail(str(e) or type(e).__name__)
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except OSError as error:
        from qkv.io.files import describe_os_error

        return _fail(describe_os_error(error))
    except MemoryError:
        return _fail(
            "out of memory: an allocation failed; use smaller sizes (--batch-size, "
            "--block-size, ...) or a machine with more memory"
        )
    except RuntimeError as error:  # PyTorch reports failed allocations as RuntimeError
        text = str(error)
        if "can't allocate memory" not in text and "out of memory" not in text.lower():
            raise
        return _fail(f"out of memory ({text.splitlines()[0][:200]}); use smaller sizes")


def _fail(message: str) -> int:
    lines = message.strip().splitlines()
    print(f"qkv: error: {lines[0] if lines else message}", file=sys.stderr)
    return 2


def _silence_stdout() -> None:
    """Point stdout at /dev/null so Python's flush at exit does not fail on the closed pipe."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
