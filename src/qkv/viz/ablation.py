"""The viewer's "what happens without it" numbers: each head's zero-ablation effect on the
loss of the shown text, precomputed with :func:`qkv.interp.ablation_effects`.

Attention weights say where a head looks, not whether it matters; this says how much the
model's next-token loss on the very text in the viewer rises when one head's output
(``hook_z``) is zeroed, for every head. Decoders only: an encoder has no next-token loss.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from qkv.interp.ablate import ablation_effects, next_token_loss
from qkv.models import GPT


def head_ablation(model: nn.Module, ids: Tensor | list[int]) -> dict[str, Any] | None:
    """``{"metric", "baseline", "effects"}`` for the viewer, or None where it has no meaning.

    ``ids`` (T,) or (1, T): the shown text's tokens. ``baseline`` is the next-token loss of
    the plain run; ``effects[l][h]`` the loss with head (l, h) zero-ablated alone minus the
    baseline (positive: the model needs the head for this text). None for encoders and for
    texts of one token (no next token to predict).
    """
    if not isinstance(model, GPT):
        return None
    batch = torch.as_tensor(ids, dtype=torch.long).view(1, -1)  # (1, T)
    if batch.shape[1] < 2:
        return None
    batch = batch.to(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            baseline = float(next_token_loss(batch)(model(batch)))
        effects = ablation_effects(model, batch)  # (L, H)
    finally:
        model.train(was_training)
    return {
        "metric": "next-token loss (mean cross-entropy, nats) over the shown text",
        "baseline": baseline,
        "effects": [[float(x) for x in row] for row in effects.tolist()],
    }
