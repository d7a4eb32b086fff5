"""Training losses as plain functions of a model's logits: a model's ``forward`` returns
logits and nothing else, and the loss is computed from them.

Example::

    >>> loss = qkv.models.language_model_loss(model(inputs), targets)            # GPT
    >>> loss = qkv.models.masked_lm_loss(model(inputs, attention_mask), labels)  # BERT MLM
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

IGNORE_INDEX = -100  # label of a position that does not count (padding, unmasked tokens)


def _cross_entropy(logits: Tensor, labels: Tensor, name: str) -> Tensor:
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"{name} must have shape {tuple(logits.shape[:-1])} (batch, seq), "
            f"got {tuple(labels.shape)}"
        )
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE_INDEX
    )


def language_model_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy of logits (B, T, V) against next-token targets (B, T) (already
    shifted: targets[:, t] is the token after inputs[:, t]); -100 ignored; in fp32."""
    return _cross_entropy(logits, targets, "targets")


def masked_lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of masked-LM logits (B, T, V) against labels (B, T): the original
    token at masked positions, -100 elsewhere (ignored); in fp32."""
    return _cross_entropy(logits, labels, "labels")
