"""Text generation with a static KV cache: ``qkv.generate`` and ``qkv.generate_stream``, the
CPU decode weight layout they use (``decode_layout`` / ``release_decode_layout``) and a model's
own defaults from its generation_config.json (``GenerationDefaults``)."""

from qkv.generation.decode_layout import decode_layout, release_decode_layout
from qkv.generation.defaults import GenerationDefaults
from qkv.generation.generate import generate, generate_stream
from qkv.generation.sampling import filter_logits, sample_next

__all__ = [
    "GenerationDefaults",
    "decode_layout",
    "filter_logits",
    "generate",
    "generate_stream",
    "release_decode_layout",
    "sample_next",
]
