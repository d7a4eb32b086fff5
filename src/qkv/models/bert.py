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

Two ways through the same layers: :meth:`Bert.forward` on a padded (B, T) batch, and
:meth:`Bert.forward_packed` on sequences packed back to back (N,) without padding (what the
sentence encoder uses). Both call ``BertLayer.add_and_feed_forward`` after attention, so the
layer is written once.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qkv.models.config import BertConfig
from qkv.models.moved_arguments import ATTENTIONS, MLM_LOSS, reject_moved_arguments
from qkv.nn.attention import MultiHeadAttention
from qkv.nn.hooks import HookedModel, HookPoint
from qkv.nn.mlp import GeluMLP
from qkv.nn.packing import PackedSequences


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
        self.hook_embed = HookPoint("(B, T, C)")  # hook points: identity unless hooked
        self.hook_token_type_embed = HookPoint("(B, T, C)")
        self.hook_pos_embed = HookPoint("(B, T, C)")

    def forward(self, input_ids: Tensor, token_type_ids: Tensor, position_ids: Tensor) -> Tensor:
        x = (
            self.hook_embed(self.word_embeddings(input_ids))
            + self.hook_token_type_embed(self.token_type_embeddings(token_type_ids))
            + self.hook_pos_embed(self.position_embeddings(position_ids))
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
        # Hook points (identity unless hooked), TransformerLens's BERT names: resid_mid is
        # before ln_1, resid_post before ln_2, normalized_resid_post the layer's output.
        self.hook_resid_pre = HookPoint("(B, T, C)")
        self.hook_attn_out = HookPoint("(B, T, C)")
        self.hook_resid_mid = HookPoint("(B, T, C)")
        self.hook_mlp_out = HookPoint("(B, T, C)")
        self.hook_resid_post = HookPoint("(B, T, C)")
        self.hook_normalized_resid_post = HookPoint("(B, T, C)")

    def forward(
        self, x: Tensor, *, mask: Tensor | None, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        """x (B, T, C) -> (x, weights (B, H, T, T) or None)."""
        x = self.hook_resid_pre(x)
        attended = self.attn(x, mask=mask, need_weights=need_weights)
        weights = None
        if need_weights:
            attended, weights = attended
        return self.add_and_feed_forward(x, attended), weights

    def forward_packed(self, x: Tensor, packing: PackedSequences) -> Tensor:
        """The same layer on packed sequences: x (N, C) -> (N, C) (see qkv.nn.packing)."""
        return self.add_and_feed_forward(x, self.attn.forward_packed(x, packing))

    def add_and_feed_forward(self, x: Tensor, attended: Tensor) -> Tensor:
        """Everything after attention, position-wise, so the padded and packed paths share
        it: ln_1(x + attended), then ln_2(x + mlp(x)). x, attended (..., C)."""
        x = self.ln_1(self.hook_resid_mid(x + self.hook_attn_out(self.dropout(attended))))
        x = self.hook_resid_post(x + self.hook_mlp_out(self.mlp(x)))
        return self.hook_normalized_resid_post(self.ln_2(x))


class Bert(HookedModel, nn.Module):
    """BERT encoder: input_ids (B, T) -> last hidden states (B, T, C).

    Example::

        >>> model = Bert(qkv.models.preset("bert-tiny", vocab_size=100))
        >>> hidden = model(ids, attention_mask=mask)       # (B, T, 128)
        >>> sentence = model.pool(hidden, mask, how="mean")  # (B, 128)
        >>> hidden, attentions = model.forward_with_attentions(ids, attention_mask=mask)
        >>> hidden, cache = model.run_with_cache(ids)  # hook points: model.hook_names()
    """

    _HOOK_RENAMES = (("embeddings.", ""), ("layers.", "blocks."))

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        if not isinstance(config, BertConfig):
            raise ValueError(f"Bert needs a BertConfig, got {type(config).__name__}")
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList(BertLayer(config) for _ in range(config.n_layer))
        self.apply(lambda module: init_bert_weights(module, config.initializer_range))

    _MOVED = {"return_attentions": ATTENTIONS.format(output="hidden")}

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        *,
        position_ids: Tensor | None = None,
        **moved: Any,
    ) -> Tensor:
        """Hidden states (B, T, C). ``attention_mask`` (B, T): 1 = real, 0 = padding (padded
        keys are removed from every row). ``token_type_ids`` (B, T) default 0. Attention
        weights: :meth:`forward_with_attentions`."""
        reject_moved_arguments("Bert", moved, self._MOVED)
        hidden, _ = self._forward(
            input_ids, attention_mask, token_type_ids, position_ids, need_weights=False
        )
        return hidden

    def forward_with_attentions(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        *,
        position_ids: Tensor | None = None,
    ) -> tuple[Tensor, list[Tensor]]:
        """:meth:`forward`'s hidden states (B, T, C) and each layer's attention weights
        (B, H, T, T), computed by the reference backend."""
        return self._forward(
            input_ids, attention_mask, token_type_ids, position_ids, need_weights=True
        )

    def _forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None,
        token_type_ids: Tensor | None,
        position_ids: Tensor | None,
        *,
        need_weights: bool,
    ) -> tuple[Tensor, list[Tensor]]:
        batch, length = self._check_inputs(input_ids, attention_mask, token_type_ids)
        device = input_ids.device
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if position_ids is None:
            position_ids = torch.arange(length, device=device).unsqueeze(0).expand(batch, length)
        x = self.embeddings(input_ids, token_type_ids, position_ids)  # (B, T, C)
        mask = None
        if attention_mask is not None:
            mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T) key mask
        attentions: list[Tensor] = []
        for layer in self.layers:
            x, weights = layer(x, mask=mask, need_weights=need_weights)
            if weights is not None:
                attentions.append(weights)
        return x, attentions

    def forward_packed(
        self, input_ids: Tensor, packing: PackedSequences, *, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """Hidden states (N, C) of sequences of different lengths packed back to back.

        ``input_ids`` (N,) are the sequences' tokens one after another, laid out as
        ``packing`` says (:class:`qkv.nn.packing.PackedSequences`); ``token_type_ids`` (N,)
        default 0. Equals :meth:`forward` on the right-padded batch with its attention mask,
        at the real positions, but every position-wise layer (embeddings, projections,
        LayerNorms, MLP) runs on the N real tokens only: padding is never computed.

        Example::

            >>> packing = PackedSequences.from_lengths([4, 2])
            >>> hidden = model.forward_packed(torch.tensor([101, 7, 8, 102, 101, 102]), packing)
            >>> hidden.shape   # (6, C)
        """
        if input_ids.dim() != 1 or input_ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"input_ids must be a 1-D integer tensor of packed tokens (N,), got "
                f"{input_ids.dtype} of shape {tuple(input_ids.shape)}"
            )
        if len(input_ids) != packing.total:
            raise ValueError(
                f"input_ids holds {len(input_ids)} tokens but packing describes {packing.total} "
                f"(lengths {packing.lengths.tolist()}); build the packing from these sequences"
            )
        if packing.width > self.config.n_positions:
            raise ValueError(
                f"a sequence of {packing.width} tokens exceeds the model's n_positions="
                f"{self.config.n_positions}; truncate the input"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        elif token_type_ids.shape != input_ids.shape:
            raise ValueError(
                f"token_type_ids must have the shape of input_ids {tuple(input_ids.shape)}, "
                f"got {tuple(token_type_ids.shape)}"
            )
        x = self.embeddings(input_ids, token_type_ids, packing.positions)  # (N, C)
        if packing.width == 0:  # only empty sequences
            return x
        for layer in self.layers:
            x = layer.forward_packed(x, packing)
        return x

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


class BertForMaskedLM(HookedModel, nn.Module):
    """BERT with the masked-LM head: input_ids (B, T) -> logits (B, T, vocab).

    Example::

        >>> model = BertForMaskedLM(qkv.models.preset("bert-tiny", vocab_size=100))
        >>> logits = model(ids, attention_mask=mask)                # (B, T, 100)
        >>> loss = qkv.models.masked_lm_loss(logits, labels)       # -100 ignored
    """

    _HOOK_RENAMES = (("bert.embeddings.", ""), ("bert.layers.", "blocks."))
    _MOVED = {"labels": MLM_LOSS, "return_attentions": ATTENTIONS.format(output="logits")}

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
        **moved: Any,
    ) -> Tensor:
        """Logits (B, T, vocab); the loss is :func:`qkv.models.masked_lm_loss` of them."""
        reject_moved_arguments("BertForMaskedLM", moved, self._MOVED)
        return self.cls.predictions(self.bert(input_ids, attention_mask, token_type_ids))

    def forward_with_attentions(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
    ) -> tuple[Tensor, list[Tensor]]:
        """:meth:`forward`'s logits and each layer's attention weights (B, H, T, T)."""
        hidden, attentions = self.bert.forward_with_attentions(
            input_ids, attention_mask, token_type_ids
        )
        return self.cls.predictions(hidden), attentions


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
