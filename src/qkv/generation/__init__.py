"""Text generation with a static KV cache: ``qkv.generate`` and ``qkv.generate_stream``."""

from qkv.generation.generate import generate, generate_stream
from qkv.generation.sampling import filter_logits, sample_next

__all__ = ["filter_logits", "generate", "generate_stream", "sample_next"]
