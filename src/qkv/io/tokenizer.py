"""``qkv.load_tokenizer`` and ``qkv.io.Tokenizer``: the tokenizer saved beside a model, in a
local folder or a Hugging Face hub snapshot.

The one tokenizer type lives in the data layer, :mod:`qkv.data.tokenizer` (training builds it
there); this module adds hub ids, resolved by :func:`qkv.io.hub.resolve_tokenizer` (which
fetches the tokenizer and config files only, never the weights).
"""

from __future__ import annotations

import os

from qkv.data.tokenizer import Tokenizer
from qkv.data.tokenizer import load_tokenizer as load_tokenizer_dir
from qkv.io.hub import resolve_tokenizer

__all__ = ["Tokenizer", "load_tokenizer"]


def load_tokenizer(path: str | os.PathLike[str], *, revision: str | None = None) -> Tokenizer:
    """Open the tokenizer of a model: a directory, a ``tokenizer.json`` file, or a hub id.

    The special tokens come from tokenizer_config.json / special_tokens_map.json, the chat
    template from chat_template.jinja or tokenizer_config.json (see
    :func:`qkv.data.load_tokenizer`). A hub id is fetched (tokenizer files only) into the
    huggingface_hub cache at ``revision``, or read from it when ``HF_HUB_OFFLINE=1``.

    Example::

        >>> tok = qkv.load_tokenizer("runs/shakespeare")
        >>> tok = qkv.load_tokenizer("Qwen/Qwen2.5-0.5B-Instruct")
        >>> tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)
    """
    return load_tokenizer_dir(resolve_tokenizer(path, revision))
