"""Recording attention for visualisation: ``with record_attention(model) as records: ...``.

While active, every attention module that can be recorded (a :class:`RecordableAttention`,
such as :class:`~qkv.nn.attention.MultiHeadAttention`) computes through the ``reference``
backend (the only source of attention weights) and appends one :class:`AttentionRecord` per
call, in call order; ``layer`` is the module's index among the model's recordable modules
(``model.modules()`` order, which is layer order).

This module imports nothing from ``qkv.nn.attention``: attention modules opt in by inheriting
:class:`RecordableAttention`, so the dependency runs one way (attention -> record).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(kw_only=True)
class AttentionRecord:
    """One attention call, detached. Shapes: q (B, Hq, Tq, D) and k (B, Hkv, Tk, D) after
    rotary, v (B, Hkv, Tk, Dv), weights (B, Hq, Tq, Tk), out (B, Hq, Tq, Dv) (per-head output
    before the output projection); ``mask`` is the mask passed to ``qkv.attention`` or None."""

    layer: int
    q: Tensor
    k: Tensor
    v: Tensor
    weights: Tensor
    out: Tensor
    scale: float
    causal: bool
    mask: Tensor | None
    window: tuple[int | None, int | None] | None = None  # sliding window (left, right)
    softcap: float | None = None  # scores = cap·tanh(scores/cap) before masking


class RecordableAttention:
    """Mixin of the attention modules :func:`record_attention` can switch on.

    ``recorder`` is the list records are appended to while recording (None otherwise);
    ``layer_index`` is set by :func:`record_attention`; ``scale`` is the module's softmax
    scale. The module calls :meth:`_record` after each attention call while ``recorder`` is
    set.
    """

    recorder: list[AttentionRecord] | None = None
    layer_index: int = 0
    scale: float

    def _record(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        weights: Tensor | None,
        out: Tensor,
        causal: bool,
        mask: Tensor | None,
    ) -> None:
        assert self.recorder is not None and weights is not None
        with torch.no_grad():
            self.recorder.append(
                AttentionRecord(
                    layer=self.layer_index,
                    q=q.detach(),
                    k=k.detach().clone(),  # cache views would change as decoding goes on
                    v=v.detach().clone(),
                    weights=weights.detach(),
                    out=out.detach(),
                    scale=float(self.scale),
                    causal=causal,
                    mask=None if mask is None else mask.detach(),
                    window=getattr(self, "window", None),
                    softcap=getattr(self, "softcap", None),
                )
            )


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """Every recordable attention module in ``model`` (each qkv.nn.MultiHeadAttention), in
    ``model.modules()`` (layer) order."""
    return [m for m in model.modules() if isinstance(m, RecordableAttention)]


@contextmanager
def record_attention(model: nn.Module) -> Iterator[list[AttentionRecord]]:
    """Record every attention call of ``model`` while the block runs; outputs are unchanged
    up to the reference backend's rounding.

    Example::

        >>> with qkv.nn.record_attention(model) as records:
        ...     model(input_ids)
        >>> records[0].weights.shape  # (B, H, T, T)
    """
    modules = attention_modules(model)
    if not modules:
        raise ValueError(
            f"{type(model).__name__} contains no qkv.nn.MultiHeadAttention to record; "
            "pass a qkv model (e.g. qkv.models.GPT or Bert)"
        )
    records: list[AttentionRecord] = []
    previous = [(m.recorder, m.layer_index) for m in modules]
    for index, module in enumerate(modules):
        module.recorder = records
        module.layer_index = index
    try:
        yield records
    finally:
        for module, (recorder, layer_index) in zip(modules, previous):
            module.recorder = recorder
            module.layer_index = layer_index
