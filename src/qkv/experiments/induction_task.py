"""The induction task: its sequences, its model and its tokenizer.

A sequence is ``<bos>`` then a block of ``period`` distinct random tokens, twice; the model is
a small GPT sized for it; the tokenizer names token ``i`` ``t{i}`` so that a trained model can
be looked at with ``qkv show "t5 t9 t3 t5 t9 t3" --model DIR``. What the experiment measures
on them is in :mod:`qkv.experiments.induction`. Example::

    >>> config = InductionConfig(period=6, min_period=3)
    >>> make_batch(config, 2, torch.Generator().manual_seed(0)).shape
    torch.Size([2, 13])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from qkv.viz.heads import repeated_random_tokens

BOS = 0


@dataclass(kw_only=True)
class InductionConfig:
    """The task and the model. Defaults train in a few CPU minutes."""

    vocab_size: int = 64  # id 0 is <bos>; random tokens are 1..vocab_size-1
    period: int = 24  # the longest block, and the one evaluated
    # Training blocks have a random length in [min_period, period] per batch, so that no head
    # can find "the token after the previous occurrence" by a fixed positional offset: it has
    # to match content, as an induction head does.
    min_period: int = 8
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    # Rotary: relative offsets such as "the previous token" are easy to learn, so the layer-0
    # previous-token head forms early (with learned positions it took > 2,500 steps).
    position: str = "rotary"  # "learned" or "rotary"
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    eval_every: int = 25
    eval_sequences: int = 64

    def __post_init__(self) -> None:
        for name in ("vocab_size", "period", "n_layer", "n_head", "n_embd", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"InductionConfig.{name} must be a positive int, got {value!r}")
        if not 2 <= self.min_period <= self.period or self.vocab_size < 3:
            raise ValueError(
                f"InductionConfig needs 2 <= min_period <= period and vocab_size >= 3, got "
                f"min_period={self.min_period}, period={self.period}, "
                f"vocab_size={self.vocab_size}"
            )
        if self.n_embd % self.n_head:
            raise ValueError(
                f"InductionConfig.n_embd ({self.n_embd}) must be divisible by n_head "
                f"({self.n_head})"
            )
        if not self.learning_rate > 0 or self.eval_every < 1 or self.eval_sequences < 1:
            raise ValueError(
                "InductionConfig needs learning_rate > 0, eval_every >= 1, eval_sequences >= 1"
            )
        if self.position not in ("learned", "rotary"):
            raise ValueError(
                f"InductionConfig.position must be 'learned' or 'rotary', got {self.position!r}"
            )

    @property
    def seq_len(self) -> int:
        return 1 + 2 * self.period


def make_batch(
    config: InductionConfig, batch: int, generator: torch.Generator, period: int | None = None
) -> Tensor:
    """(batch, 1 + 2·period) ids: <bos>, then a random block of distinct tokens, twice."""
    return repeated_random_tokens(
        vocab=list(range(1, config.vocab_size)),
        period=period or config.period,
        batch=batch,
        prefix=[BOS],
        generator=generator,
    )


def build_model(config: InductionConfig) -> Any:
    """A 2-layer GPT (rotary or learned positions, LayerNorm, GELU MLP) sized for the task."""
    from qkv.models import GPT, GPTConfig

    return GPT(
        GPTConfig(
            vocab_size=config.vocab_size,
            n_positions=config.seq_len,
            n_layer=config.n_layer,
            n_head=config.n_head,
            n_embd=config.n_embd,
            position=config.position,
            dropout=0.0,
        )
    )


def word_tokenizer(vocab_size: int) -> Any:
    """A whitespace word-level tokenizer over ``<bos> t1 … t{V-1}`` (so text like
    ``"t5 t17 t5"`` can be shown with ``qkv show --model``); prepends <bos>."""
    from tokenizers import Tokenizer as Backend
    from tokenizers import models, pre_tokenizers, processors

    from qkv.io import Tokenizer

    vocab = {"<bos>": BOS} | {f"t{i}": i for i in range(1, vocab_size)}
    backend = Backend(models.WordLevel(vocab, unk_token="<bos>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", BOS)]
    )
    backend.add_special_tokens(["<bos>"])
    return Tokenizer(backend, special_tokens={"bos": "<bos>", "unk": "<bos>"})
