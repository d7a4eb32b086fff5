"""Transformer building blocks on top of ``qkv.attention``: multi-head attention (GQA,
rotary, masks, KV-cache hook, weights on request, packed variable-length sequences), norms,
MLPs, a static KV cache and attention recording for visualisation."""

from typing import Any

from qkv.nn.attention import MultiHeadAttention
from qkv.nn.kv_cache import KVCache, LayerKVCache
from qkv.nn.mlp import GeluMLP, SwiGLU
from qkv.nn.norms import RMSNorm, make_norm
from qkv.nn.packing import PackedSequences
from qkv.nn.record import AttentionRecord, attention_modules, record_attention
from qkv.nn.rotary import RotaryEmbedding, apply_rotary, rotate_half

__all__ = [
    "AttentionRecord",
    "GeluMLP",
    "KVCache",
    "LayerKVCache",
    "MultiHeadAttention",
    "PackedSequences",
    "RMSNorm",
    "RotaryEmbedding",
    "SwiGLU",
    "apply_rotary",
    "attention_modules",
    "make_norm",
    "record_attention",
    "rotate_half",
]

# Moved to qkv.generation (a generation optimisation, not a building block); these names stay
# reachable here, imported on first use, because the README and published results cite them.
_MOVED = {"decode_layout", "release_decode_layout"}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import qkv.generation

        return getattr(qkv.generation, name)
    raise AttributeError(f"module 'qkv.nn' has no attribute {name!r}")
