"""Transformer building blocks on top of ``qkv.attention``: multi-head attention (GQA,
rotary, masks, KV-cache hook, weights on request, packed variable-length sequences), norms,
MLPs, a static KV cache, attention recording for visualisation and hook points
(TransformerLens names) for caching and patching activations."""

from qkv.nn.attention import MultiHeadAttention
from qkv.nn.hooks import ActivationCache, HookedModel, HookPoint
from qkv.nn.kv_cache import KVCache, LayerKVCache
from qkv.nn.mlp import GeluMLP, SwiGLU
from qkv.nn.norms import RMSNorm, make_norm
from qkv.nn.packing import PackedSequences
from qkv.nn.record import AttentionRecord, attention_modules, record_attention
from qkv.nn.rotary import RotaryEmbedding, apply_rotary, rotate_half

__all__ = [
    "ActivationCache",
    "HookPoint",
    "HookedModel",
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
