"""Capture what every attention layer of a qkv model computed for one input.

:func:`capture_weights` returns the attention probabilities of every layer and head as one
(L, H, T, T) tensor; :func:`capture` also keeps the per-head queries, keys, values and
outputs together with the token strings, as a :class:`Capture` that the renderers, the
walkthrough (``qkv explain``) and the HTML viewer read.

The numbers come from ``qkv.nn.record_attention``, i.e. from the model's own forward pass,
not from a re-implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(kw_only=True)
class Capture:
    """Everything the attention layers computed for one sequence (batch of one).

    Shapes: L layers, H query heads, T tokens, D head dim. Grouped-query keys and values are
    expanded to H heads (query head h reads key/value head h // (H // Hkv)) for display.
    """

    tokens: list[str]  # display strings, length T
    special: list[bool]  # special-token flags ([CLS], [SEP], <bos>...), length T
    weights: Tensor  # (L, H, T, T) float32 probabilities; rows sum to 1 (0 for masked rows)
    queries: Tensor  # (L, H, T, D) per-head queries (after rotary)
    keys: Tensor  # (L, H, T, D) per-head keys, kv heads expanded to H
    values: Tensor  # (L, H, T, D) per-head values, expanded to H
    head_outputs: Tensor  # (L, H, T, D) per-head z = weights @ values, as the model computed it
    scale: float  # the 1/sqrt(d_k) the model used
    causal: bool
    model_name: str
    num_kv_heads: int = 0  # key/value heads before expansion; 0: as many as query heads

    def __post_init__(self) -> None:
        if self.weights.dim() != 4:
            raise ValueError(
                f"Capture.weights must be (L, H, T, T), got shape {tuple(self.weights.shape)}"
            )
        layers, heads, t_q, t_k = self.weights.shape
        if t_q != t_k:
            raise ValueError(f"Capture.weights must be square over tokens, got {t_q}×{t_k}")
        if len(self.tokens) != t_q or len(self.special) != t_q:
            raise ValueError(
                f"Capture has {t_q} positions but {len(self.tokens)} tokens and "
                f"{len(self.special)} special flags; they must match"
            )
        kv = self.num_kv_heads
        if isinstance(kv, bool) or not isinstance(kv, int) or kv < 0 or (kv and heads % kv):
            raise ValueError(
                f"Capture.num_kv_heads must be 0 or a divisor of the {heads} query heads, "
                f"got {kv!r}"
            )
        for name in ("queries", "keys", "values", "head_outputs"):
            shape = tuple(getattr(self, name).shape)
            if len(shape) != 4 or shape[:3] != (layers, heads, t_q):
                raise ValueError(
                    f"Capture.{name} must be ({layers}, {heads}, {t_q}, D), got {shape}"
                )

    @property
    def num_layers(self) -> int:
        return self.weights.shape[0]

    @property
    def num_heads(self) -> int:
        return self.weights.shape[1]

    @property
    def num_tokens(self) -> int:
        return self.weights.shape[2]

    @property
    def kv_heads(self) -> int:
        """Key/value heads the model has (fewer than query heads under grouped-query attention)."""
        return self.num_kv_heads or self.num_heads

    def kv_head_of(self, head: int) -> int:
        """The key/value head query head ``head`` reads."""
        return head // (self.num_heads // self.kv_heads)

    def to_json_dict(self, *, digits: int = 4) -> dict[str, Any]:
        """Plain Python lists and numbers, rounded to ``digits`` decimals, for embedding in HTML.

        Keys: tokens, special, weights [L][H][T][T], queries / keys / values / head_outputs
        [L][H][T][D], scale, causal, model_name, num_layers, num_heads, num_kv_heads, num_tokens,
        head_dim, value_dim.
        """

        def plain(tensor: Tensor) -> list:
            return torch.round(tensor.detach().float().cpu(), decimals=digits).tolist()

        return {
            "model_name": self.model_name,
            "tokens": list(self.tokens),
            "special": [bool(flag) for flag in self.special],
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "num_kv_heads": self.kv_heads,
            "num_tokens": self.num_tokens,
            "head_dim": int(self.queries.shape[-1]),
            "value_dim": int(self.values.shape[-1]),
            "scale": float(self.scale),
            "causal": bool(self.causal),
            "weights": plain(self.weights),
            "queries": plain(self.queries),
            "keys": plain(self.keys),
            "values": plain(self.values),
            "head_outputs": plain(self.head_outputs),
        }


def expand_kv_heads(tensor: Tensor, q_heads: int) -> Tensor:
    """(B, Hkv, T, D) -> (B, Hq, T, D): query head h reads kv head h // (Hq // Hkv)."""
    kv_heads = tensor.shape[1]
    if q_heads % kv_heads:
        raise ValueError(f"{q_heads} query heads is not a multiple of {kv_heads} kv heads")
    return tensor.repeat_interleave(q_heads // kv_heads, dim=1)


def _as_batch(input_ids: Tensor | list[int]) -> Tensor:
    ids = torch.as_tensor(input_ids, dtype=torch.long)
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)  # (1, T)
    if ids.dim() != 2 or ids.shape[0] != 1:
        raise ValueError(
            f"input_ids must be (T,) or (1, T) for a capture, got shape {tuple(ids.shape)}; "
            "capture one sequence at a time"
        )
    if ids.shape[1] == 0:
        raise ValueError("input_ids is empty: give at least one token")
    return ids


def _run_model(model: Any, input_ids: Tensor, attention_mask: Tensor | None) -> None:
    if attention_mask is None:
        model(input_ids)
    else:
        model(input_ids, attention_mask=attention_mask)


def record(model: Any, input_ids: Tensor | list[int], attention_mask: Tensor | None = None):
    """Run ``model`` on one sequence in eval mode without gradients; return its records.

    Returns the list of ``qkv.nn.AttentionRecord`` (one per attention layer, in order).
    """
    from qkv.nn import record_attention

    ids = _as_batch(input_ids)
    _check_ids(model, ids)
    device = _model_device(model)
    ids = ids.to(device)
    if attention_mask is not None:
        attention_mask = torch.as_tensor(attention_mask).to(device)
        if attention_mask.dim() == 1:
            attention_mask = attention_mask.unsqueeze(0)  # (1, T)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with torch.no_grad(), record_attention(model) as records:
            _run_model(model, ids, attention_mask)
    finally:
        if was_training:
            model.train()
    if not records:
        raise ValueError(
            f"{type(model).__name__} recorded no attention layers; capture needs a qkv model "
            "built from qkv.nn attention modules"
        )
    return list(records)


def _check_ids(model: Any, ids: Tensor) -> None:
    """Token ids and length the model can take, checked here for a clear error."""
    config = getattr(model, "config", None)
    vocab = getattr(config, "vocab_size", None)
    if isinstance(vocab, int) and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        raise ValueError(
            f"token ids must lie in [0, {vocab}) for this model's vocabulary, got "
            f"{int(ids.min())}..{int(ids.max())}; use the tokenizer saved with the model"
        )
    limit = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
    if isinstance(limit, int) and ids.shape[1] > limit:
        raise ValueError(
            f"{ids.shape[1]} tokens is longer than the model's {limit} positions; "
            "use a shorter text"
        )


def _model_device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def capture_weights(
    model: Any, input_ids: Tensor | list[int], attention_mask: Tensor | None = None
) -> Tensor:
    """Attention probabilities of every layer and head of ``model`` for one sequence.

    ``input_ids`` is (T,) or (1, T); ``attention_mask`` (optional) is (T,) or (1, T) with 1 for
    real tokens. Returns a float32 CPU tensor (L, H, T, T): rows sum to 1 (0 for fully masked
    rows), zero above the diagonal for causal models.

    Example::

        >>> weights = capture_weights(model, tokenizer.encode("the cat sat"))
        >>> weights.shape  # (layers, heads, T, T)
    """
    records = record(model, input_ids, attention_mask)
    return torch.stack([r.weights[0].detach().float().cpu() for r in records])  # (L, H, T, T)


def token_strings(tokenizer: Any, ids: list[int]) -> list[str]:
    """Display strings for ``ids``; falls back to decoding ids one at a time."""
    if hasattr(tokenizer, "tokens"):
        try:
            strings = list(tokenizer.tokens(ids))
            if len(strings) == len(ids):
                return [str(s) for s in strings]
        except (TypeError, ValueError):
            pass
    return [tokenizer.decode([i]) for i in ids]


def _special_ids(tokenizer: Any) -> set[int]:
    special = getattr(tokenizer, "special_ids", None)
    if callable(special):
        special = special()
    if isinstance(special, dict):
        special = special.values()
    return {int(i) for i in (special or [])}


def _encode(tokenizer: Any, text: str) -> list[int]:
    ids = tokenizer.encode(text)
    if hasattr(ids, "ids"):  # a tokenizers.Encoding
        ids = ids.ids
    return [int(i) for i in ids]


def capture(model: Any, tokenizer: Any, text: str, *, model_name: str | None = None) -> Capture:
    """Tokenize ``text``, run ``model`` once and keep every layer's q, k, v, weights and z.

    Returns a :class:`Capture` with (L, H, T, ·) tensors (batch of one), the token strings
    and special-token flags.

    Example::

        >>> model = qkv.pretrained("all-minilm-l6-v2")
        >>> cap = capture(model, tokenizer, "The cat sat on the mat.")
        >>> cap.weights.shape  # (6, 12, T, T)
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text is empty: give a sentence to run through the model")
    ids = _encode(tokenizer, text)
    if not ids:
        raise ValueError(f"the tokenizer produced no tokens for {text!r}")
    special_ids = _special_ids(tokenizer)
    return capture_ids(
        model,
        ids,
        tokens=token_strings(tokenizer, ids),
        special=[i in special_ids for i in ids],
        model_name=model_name,
    )


def capture_ids(
    model: Any,
    input_ids: Tensor | list[int],
    *,
    tokens: list[str] | None = None,
    special: list[bool] | None = None,
    model_name: str | None = None,
) -> Capture:
    """Like :func:`capture` for token ids without a tokenizer (synthetic tasks).

    ``tokens`` defaults to the ids as strings, ``special`` to all False.
    """
    ids = _as_batch(input_ids)
    records = record(model, ids)
    heads = records[0].weights.shape[1]

    def stack(field: str) -> Tensor:
        parts = []
        for rec in records:
            tensor = getattr(rec, field).detach()
            if tensor.shape[1] != heads:
                tensor = expand_kv_heads(tensor, heads)
            parts.append(tensor[0].float().cpu())  # (H, T, D)
        return torch.stack(parts)  # (L, H, T, D)

    id_list = ids[0].tolist()
    name = model_name or getattr(model, "name", None) or type(model).__name__
    return Capture(
        tokens=list(tokens) if tokens is not None else [str(i) for i in id_list],
        special=list(special) if special is not None else [False] * len(id_list),
        weights=stack("weights"),
        queries=stack("q"),
        keys=stack("k"),
        values=stack("v"),
        head_outputs=stack("out"),
        scale=float(records[0].scale),
        causal=bool(records[0].causal),
        model_name=str(name),
        num_kv_heads=int(records[0].k.shape[1]),
    )
