"""Attention kernels: the functional API, the validated call, and the backend registry."""

from qkv.attention.api import BackendInfo, attention, attention_backends, explain_backend
from qkv.attention.call import AttentionCall
from qkv.attention.dispatch import BackendChoice, choose
from qkv.attention.registry import Backend, get_backend, register_backend
from qkv.attention.varlen import varlen_attention

__all__ = [
    "AttentionCall",
    "Backend",
    "BackendChoice",
    "BackendInfo",
    "attention",
    "attention_backends",
    "choose",
    "explain_backend",
    "get_backend",
    "register_backend",
    "varlen_attention",
]
