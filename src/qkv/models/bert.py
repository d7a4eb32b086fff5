"""BERT: a post-LayerNorm encoder with token types, pooling, and a masked-LM head.

Parameter names (close to transformers' BertModel; the attention is qkv's fused module)::

    embeddings.word_embeddings.weight          (vocab, C)
    embeddings.position_embeddings.weight      (P, C)
    embeddings.token_type_embeddings.weight    (types, C)
    embeddings.LayerNorm.{weight,bias}
    layers.{i}.attn.c_attn.{weight,bias}       (3C, C)  rows [query | key | value]
    layers.{i}.attn.c_proj.{weight,bias}       (C, C)   attention.output.dense
    layers.{i}.ln_1.{weight,bias}                       attention.output.LayerNorm
    layers.{i}.mlp.c_fc.{weight,bias}          (I, C)   intermediate.dense
    layers.{i}.mlp.c_proj.{weight,bias}        (C, I)   output.dense
    layers.{i}.ln_2.{weight,bias}                       output.LayerNorm

``BertForMaskedLM`` puts the encoder under ``bert.`` and the head under
``cls.predictions.transform.dense``, ``cls.predictions.transform.LayerNorm`` and
``cls.predictions.decoder`` (weight tied to the word embeddings, with its own bias, which is
transformers' ``cls.predictions.bias``). BERT's pooler (dense + tanh) is not included:
sentence embeddings use :meth:`Bert.pool`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qkv.models.config import BertConfig
from qkv.nn.attention import MultiHeadAttention
from qkv.nn.mlp import GeluMLP


class BertEmbeddings(nn.Module):
    """word + position + token-type embeddings, then LayerNorm and dropout. (B, T) -> (B, T, C)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        c = config
        self.word_embeddings = nn.Embedding(c.vocab_size, c.n_embd, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.n_positions, c.n_embd)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.n_embd)
        self.LayerNorm = nn.LayerNorm(c.n_embd, eps=c.norm_eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor, position_ids: Tensor) -> Tensor:
        x = (
            self.word_embeddings(input_ids)
            + self.token_type_embeddings(token_type_ids)
            + self.position_embeddings(position_ids)
        )  # (B, T, C)
        return self.dropout(self.LayerNorm(x))


class BertLayer(nn.Module):
    """Post-norm encoder layer: x = ln_1(x + attn(x)); x = ln_2(x + mlp(x)). x (B, T, C)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        c = config
        self.attn = MultiHeadAttention(
            hidden_size=c.n_embd,
            n_heads=c.n_head,
            causal=False,
            dropout=c.attention_dropout,
            backend=c.attention_backend,
        )
        self.ln_1 = nn.LayerNorm(c.n_embd, eps=c.norm_eps)
        self.mlp = GeluMLP(c.n_embd, c.intermediate_size, activation="gelu", dropout=c.dropout)
        self.ln_2 = nn.LayerNorm(c.n_embd, eps=c.norm_eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(
        self, x: Tensor, *, mask: Tensor | None, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        attended = self.attn(x, mask=mask, need_weights=need_weights)
        weights = None
        if need_weights:
            attended, weights = attended
        x = self.ln_1(x + self.dropout(attended))
        x = self.ln_2(x + self.mlp(x))
        return x, weights


class Bert(nn.Module):
    """BERT encoder: input_ids (B, T) -> last hidden states (B, T, C).

    Example::

        >>> model = Bert(qkv.models.preset("bert-tiny", vocab_size=100))
        >>> hidden = model(ids, attention_mask=mask)       # (B, T, 128)
        >>> sentence = model.pool(hidden, mask, how="mean")  # (B, 128)
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        if not isinstance(config, BertConfig):
            raise ValueError(f"Bert needs a BertConfig, got {type(config).__name__}")
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList(BertLayer(config) for _ in range(config.n_layer))
        self.apply(lambda module: init_bert_weights(module, config.initializer_range))

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        *,
        position_ids: Tensor | None = None,
        return_attentions: bool = False,
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Hidden states (B, T, C); with ``return_attentions`` also per-layer weights
        (B, H, T, T). ``attention_mask`` (B, T): 1 = real, 0 = padding (padded keys are
        removed from every row). ``token_type_ids`` (B, T) default 0."""
        batch, length = self._check_inputs(input_ids, attention_mask, token_type_ids)
        device = input_ids.device
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if position_ids is None:
            position_ids = torch.arange(length, device=device).unsqueeze(0).expand(batch, length)
        x = self.embeddings(input_ids, token_type_ids, position_ids)
        mask = None
        if attention_mask is not None:
            mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T) key mask
        attentions: list[Tensor] = []
        for layer in self.layers:
            x, weights = layer(x, mask=mask, need_weights=return_attentions)
            if weights is not None:
                attentions.append(weights)
        return (x, attentions) if return_attentions else x

    def _check_inputs(
        self, input_ids: Tensor, attention_mask: Tensor | None, token_type_ids: Tensor | None
    ) -> tuple[int, int]:
        if input_ids.dim() != 2 or input_ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"input_ids must be an integer tensor of shape (batch, seq), got "
                f"{input_ids.dtype} of shape {tuple(input_ids.shape)}"
            )
        batch, length = input_ids.shape
        if length > self.config.n_positions:
            raise ValueError(
                f"sequence of {length} tokens exceeds the model's n_positions="
                f"{self.config.n_positions}; truncate the input"
            )
        optional = (("attention_mask", attention_mask), ("token_type_ids", token_type_ids))
        for name, tensor in optional:
            if tensor is not None and tuple(tensor.shape) != (batch, length):
                raise ValueError(
                    f"{name} must have the shape of input_ids {(batch, length)}, "
                    f"got {tuple(tensor.shape)}"
                )
        return batch, length

    @staticmethod
    def pool(
        hidden: Tensor, attention_mask: Tensor | None = None, how: Literal["mean", "cls"] = "mean"
    ) -> Tensor:
        """Sentence vectors (B, C) from hidden (B, T, C): the mean over real tokens
        (sentence-transformers' mean pooling) or the first ([CLS]) token."""
        if how == "cls":
            return hidden[:, 0]
        if how != "mean":
            raise ValueError(f"pool how must be 'mean' or 'cls', got {how!r}")
        if attention_mask is None:
            return hidden.mean(dim=1)
        weights = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


class MaskedLMTransform(nn.Module):
    """dense -> GELU (erf) -> LayerNorm, as transformers' BertPredictionHeadTransform."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.n_embd, config.n_embd)
        self.LayerNorm = nn.LayerNorm(config.n_embd, eps=config.norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.LayerNorm(F.gelu(self.dense(x)))


class MaskedLMHead(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.transform = MaskedLMTransform(config)
        self.decoder = nn.Linear(config.n_embd, config.vocab_size, bias=True)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.decoder(self.transform(hidden))  # (B, T, vocab)


class MaskedLMHeads(nn.Module):
    """Holds ``predictions`` so parameter names read ``cls.predictions.*`` as in transformers."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.predictions = MaskedLMHead(config)


class BertForMaskedLM(nn.Module):
    """BERT with the masked-LM head: logits (B, T, vocab), or (logits, loss) with labels.

    Example::

        >>> model = BertForMaskedLM(qkv.models.preset("bert-tiny", vocab_size=100))
        >>> logits, loss = model(ids, attention_mask=mask, labels=labels)  # -100 ignored
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = Bert(config)
        self.cls = MaskedLMHeads(config)
        self.cls.apply(lambda module: init_bert_weights(module, config.initializer_range))
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        *,
        labels: Tensor | None = None,
        return_attentions: bool = False,
    ) -> Tensor | tuple[Tensor, ...]:
        """Returns logits, or a tuple (logits, loss?, attentions?) in that order."""
        encoded = self.bert(
            input_ids, attention_mask, token_type_ids, return_attentions=return_attentions
        )
        hidden, attentions = encoded if return_attentions else (encoded, None)
        logits = self.cls.predictions(hidden)
        outputs: list[Tensor | list[Tensor]] = [logits]
        if labels is not None:
            if labels.shape != input_ids.shape:
                raise ValueError(
                    f"labels must have the shape of input_ids {tuple(input_ids.shape)}, "
                    f"got {tuple(labels.shape)}"
                )
            outputs.append(
                F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]).float(),
                    labels.reshape(-1),
                    ignore_index=-100,
                )
            )
        if attentions is not None:
            outputs.append(attentions)
        return logits if len(outputs) == 1 else tuple(outputs)  # type: ignore[return-value]


def init_bert_weights(module: nn.Module, std: float) -> None:
    """BERT's initialisation: normal(0, std) weights, zero biases, unit LayerNorm."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
