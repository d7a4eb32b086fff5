"""``qkv.load_tokenizer`` and ``qkv.io.Tokenizer``: the tokenizer saved beside a model.

The one tokenizer type lives in the data layer, :mod:`qkv.data.tokenizer` (training builds it
there); this module keeps the ``qkv.io`` import path and adds what a reader of checkpoints
needs on top of :func:`qkv.data.load_tokenizer`: a ``qkv train`` run folder stands for its
best (else latest) checkpoint, and a checkpoint's manifest hashes are checked.
"""

from __future__ import annotations

import os
from pathlib import Path

from qkv.data.tokenizer import Tokenizer
from qkv.data.tokenizer import load_tokenizer as _read_tokenizer
from qkv.io.integrity import verify_files
from qkv.io.run_folder import checkpoint_of_run, confined_location, is_run_folder

__all__ = ["TOKENIZER_FILES", "Tokenizer", "load_tokenizer"]

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
)  # fmt: skip


def load_tokenizer(path: str | os.PathLike[str]) -> Tokenizer:
    """Open the tokenizer saved in directory ``path`` (or a ``tokenizer.json`` file), or in
    the best (else latest) checkpoint of the ``qkv train`` run folder ``path``.

    Prefers ``tokenizer.json``; falls back to a WordPiece ``vocab.txt`` (BERT) with
    ``do_lower_case`` from ``tokenizer_config.json``. In a checkpoint with a manifest
    (``checkpoint.json``) the tokenizer files' SHA-256 are checked first; a changed file
    raises ValueError naming it.

    Example::

        >>> tok = qkv.load_tokenizer("runs/shakespeare")
        >>> tok.decode(tok.encode("To be"))
        'To be'
    """
    location = Path(path)
    if location.is_dir():
        location = confined_location(location)
        if not any((location / name).is_file() for name in TOKENIZER_FILES) and is_run_folder(
            location
        ):
            location = checkpoint_of_run(location, prefer="best")
        verify_files(location, TOKENIZER_FILES)
    elif location.is_file():
        verify_files(location.parent, TOKENIZER_FILES)
    return _read_tokenizer(location)
