"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers").

Per layer l: A_l = mean over heads of the attention weights, plus the identity for the
residual connection, rows renormalised to sum to 1. Rollout multiplies these through the
layers: R_1 = A_1, R_l = A_l · R_{l-1}. Row i of R_L says how much each input token flows
into position i at the output, accounting for the residual path.
"""

from __future__ import annotations

import torch
from torch import Tensor


def rollout(
    weights: Tensor,
    *,
    residual: bool = True,
    head_fusion: str = "mean",
    all_layers: bool = False,
) -> Tensor:
    """Attention rollout of weights (L, H, T, T) (or head-fused (L, T, T)).

    ``residual`` adds the identity before renormalising (the paper's 0.5·A + 0.5·I when rows
    sum to 1); ``head_fusion`` is ``"mean"`` (the paper), ``"max"`` or ``"min"``. Returns
    float64 (T, T), or (L, T, T) with every partial product when ``all_layers``.

    Example::

        >>> flow = rollout(capture_weights(model, ids))  # (T, T)
        >>> flow[-1]  # how much each input token reaches the last position
    """
    if weights.dim() == 4:
        if head_fusion == "mean":
            fused = weights.double().mean(dim=1)
        elif head_fusion == "max":
            fused = weights.double().amax(dim=1)
        elif head_fusion == "min":
            fused = weights.double().amin(dim=1)
        else:
            raise ValueError(
                f"head_fusion={head_fusion!r} is not supported; use 'mean', 'max' or 'min'"
            )
    elif weights.dim() == 3:
        fused = weights.double()
    else:
        raise ValueError(
            f"rollout needs weights (L, H, T, T) or (L, T, T), got shape {tuple(weights.shape)}"
        )
    layers, t_q, t_k = fused.shape  # (L, T, T)
    if t_q != t_k:
        raise ValueError(f"rollout needs square (self-)attention, got {t_q}×{t_k}")
    if layers == 0:
        raise ValueError("rollout needs at least one layer of weights")
    eye = torch.eye(t_q, dtype=fused.dtype, device=fused.device)
    if residual:
        fused = fused + eye
    rows = fused.sum(dim=-1, keepdim=True)
    fused = fused / torch.where(rows == 0, torch.ones_like(rows), rows)
    result = eye
    partial = []
    for layer in range(layers):
        result = fused[layer] @ result  # (T, T)
        partial.append(result)
    return torch.stack(partial) if all_layers else result
