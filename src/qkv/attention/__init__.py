"""Attention kernels: the functional API, the validated call, and the backends.

Layers, top to bottom: ``api`` (``attention``, ``attention_with_weights``, ``explain_backend``)
and ``varlen`` (packed sequences) → ``validate`` → ``dispatch`` (``auto``) → ``backends`` (the
built-in table) → one module per backend (``reference``, ``sdpa``, ``math_backend``,
``flash_tiles``, ``tiled``, ``triton_backend``) → ``registry`` (what a backend is) → ``call``.
"""

from qkv.attention.api import (
    BackendInfo,
    attention,
    attention_backends,
    attention_with_weights,
    explain_backend,
)
from qkv.attention.backends import get_backend
from qkv.attention.call import AttentionCall
from qkv.attention.dispatch import BackendChoice, choose
from qkv.attention.registry import Backend, register_backend
from qkv.attention.varlen import varlen_attention

__all__ = [
    "AttentionCall",
    "Backend",
    "BackendChoice",
    "BackendInfo",
    "attention",
    "attention_backends",
    "attention_with_weights",
    "choose",
    "explain_backend",
    "get_backend",
    "register_backend",
    "varlen_attention",
]
