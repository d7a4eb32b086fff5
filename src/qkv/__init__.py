"""qkv: transformer self-attention, softmax(QKᵀ/√d_k)·V, from the formula to language models
you build, train, run and look inside.

``import qkv`` stays light: models, checkpoint I/O, generation and visualisation load on first
use.
"""

from __future__ import annotations

import importlib
from typing import Any

from qkv.attention import (
    attention,
    attention_backends,
    attention_with_weights,
    explain_backend,
)

__version__ = "0.1.0"

# Public name -> module that defines it, imported on first access.
_LAZY = {
    "alibi_slopes": "qkv.attention.alibi",
    "load": "qkv.io",
    "save": "qkv.io",
    "load_tokenizer": "qkv.io",
    "pretrained": "qkv.io",
    "generate": "qkv.generation",
    "generate_stream": "qkv.generation",
}
_SUBMODULES = {
    "nn",
    "models",
    "io",
    "generation",
    "data",
    "training",
    "viz",
    "experiments",
    "bench",
    "cli",
}

__all__ = [
    "attention",
    "attention_backends",
    "attention_with_weights",
    "explain_backend",
    *_LAZY,
    *sorted(_SUBMODULES),
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"qkv.{name}")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qkv' has no attribute {name!r}")
