"""Small models and a word-level tokenizer shared by the viz tests (imported by module name)."""

from __future__ import annotations

import torch

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "."]


def word_tokenizer():
    """A qkv Tokenizer over WORDS with a <bos> special token prepended to every text."""
    from tokenizers import Tokenizer as Backend
    from tokenizers import models, pre_tokenizers, processors

    from qkv.io import Tokenizer

    vocab = {"<unk>": 0, "<bos>": 1} | {w: i + 2 for i, w in enumerate(WORDS)}
    backend = Backend(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", 1)]
    )
    backend.add_special_tokens(["<unk>", "<bos>"])
    return Tokenizer(backend, special_tokens={"bos": "<bos>", "unk": "<unk>"})


def tiny_gpt(name: str = "gpt-nano", **overrides):
    from qkv.models import build, preset

    torch.manual_seed(0)
    return build(preset(name, vocab_size=len(WORDS) + 2, n_positions=64, **overrides)).eval()


def tiny_bert():
    from qkv.models import build, preset

    torch.manual_seed(0)
    return build(preset("bert-tiny")).eval()
