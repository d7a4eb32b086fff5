"""``qkv.load_tokenizer`` and ``qkv.io.Tokenizer``: the tokenizer saved beside a model, in a
local folder, a ``qkv train`` run folder or a Hugging Face hub snapshot.

The one tokenizer type lives in the data layer, :mod:`qkv.data.tokenizer` (training builds it
there); this module adds what a reader of models needs on top of
:func:`qkv.data.load_tokenizer`: hub ids, resolved by :func:`qkv.io.hub.resolve_tokenizer`
(which fetches the tokenizer and config files only, never the weights); a ``qkv train`` run
folder stands for its best (else latest) checkpoint; and a checkpoint's manifest hashes are
checked.
"""

from __future__ import annotations

import os

from qkv.data.tokenizer import Tokenizer
from qkv.data.tokenizer import load_tokenizer as _read_tokenizer
from qkv.io.hub import resolve_tokenizer
from qkv.io.integrity import verify_files
from qkv.io.run_folder import checkpoint_of_run, confined_location, is_run_folder

__all__ = ["TOKENIZER_FILES", "Tokenizer", "load_tokenizer"]

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
)  # fmt: skip


def load_tokenizer(path: str | os.PathLike[str], *, revision: str | None = None) -> Tokenizer:
    """Open the tokenizer of a model: a directory, a ``tokenizer.json`` file, the best (else
    latest) checkpoint of the ``qkv train`` run folder ``path``, or a hub id.

    The special tokens come from tokenizer_config.json / special_tokens_map.json, the chat
    template from chat_template.jinja or tokenizer_config.json (see
    :func:`qkv.data.load_tokenizer`); a WordPiece ``vocab.txt`` (BERT) is read when there is
    no ``tokenizer.json``. A hub id is fetched (tokenizer files only) into the
    huggingface_hub cache at ``revision``, or read from it when ``HF_HUB_OFFLINE=1``. In a
    checkpoint with a manifest (``checkpoint.json``) the tokenizer files' SHA-256 are checked
    first; a changed file raises ValueError naming it.

    Example::

        >>> tok = qkv.load_tokenizer("runs/shakespeare")
        >>> tok = qkv.load_tokenizer("Qwen/Qwen2.5-0.5B-Instruct")
        >>> tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)
    """
    location = resolve_tokenizer(path, revision)
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
