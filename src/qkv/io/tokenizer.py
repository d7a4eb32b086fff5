"""``qkv.load_tokenizer`` and ``qkv.io.Tokenizer``: the tokenizer saved beside a model.

The one tokenizer type lives in the data layer, :mod:`qkv.data.tokenizer` (training builds it
there); this module keeps the ``qkv.io`` import path.
"""

from qkv.data.tokenizer import Tokenizer, load_tokenizer

__all__ = ["Tokenizer", "load_tokenizer"]
