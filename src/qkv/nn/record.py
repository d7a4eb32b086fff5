"""Recording attention for visualisation: ``with record_attention(model) as records: ...``.

While active, every :class:`~qkv.nn.attention.MultiHeadAttention` in the model computes
through the ``reference`` backend (the only source of attention weights) and appends one
:class:`AttentionRecord` per call, in call order; ``layer`` is the module's index among the
model's attention modules (``model.modules()`` order, which is layer order).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """Every MultiHeadAttention in ``model``, in ``model.modules()`` (layer) order."""
    from qkv.nn.attention import MultiHeadAttention

    return [m for m in model.modules() if isinstance(m, MultiHeadAttention)]


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
