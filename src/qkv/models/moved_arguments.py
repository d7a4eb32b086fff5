"""Arguments a model's ``forward`` no longer takes, refused with the replacement spelled out.

A forward returns one thing (logits, or hidden states for a bare encoder). Losses moved to
:mod:`qkv.models.losses` and attention weights to ``model.forward_with_attentions`` (or
``qkv.nn.record_attention``); passing the old arguments raises ValueError naming the new call
instead of a bare TypeError.
"""

from __future__ import annotations

from typing import Any

ATTENTIONS = (
    "{output}, attentions = model.forward_with_attentions(input_ids, ...) (same arguments as "
    "forward; or record them with `with qkv.nn.record_attention(model) as records:`)"
)
LM_LOSS = "loss = qkv.models.language_model_loss(model(input_ids), targets)"
MLM_LOSS = "loss = qkv.models.masked_lm_loss(model(input_ids, attention_mask), labels)"


def reject_moved_arguments(owner: str, given: dict[str, Any], moved: dict[str, str]) -> None:
    """Raise for any keyword in ``given``: ValueError with the replacement for the names in
    ``moved`` ({argument: replacement code}), TypeError (as Python would) for the others."""
    for name in given:
        if name in moved:
            raise ValueError(
                f"{owner}.forward no longer takes {name}=: it returns one tensor. Use {moved[name]}"
            )
    if given:
        raise TypeError(
            f"{owner}.forward() got an unexpected keyword argument {next(iter(given))!r}"
        )
