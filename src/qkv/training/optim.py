"""AdamW with nanoGPT's parameter groups: weight decay on 2-D (and larger) weights only.

Biases, norm gains and other 1-D parameters are not decayed. Embedding tables are 2-D and
decayed, as in nanoGPT (tied with the output projection, they are a weight matrix too).
"""

from __future__ import annotations

import torch
from torch import nn


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: ``{"params": 2-D+, "weight_decay": wd}`` and ``{..., 0.0}``.

    Shared (tied) parameters appear once.
    """
    decay, no_decay, seen = [], [], set()
    for parameter in model.parameters():
        if not parameter.requires_grad or id(parameter) in seen:
            continue
        seen.add(id(parameter))
        (decay if parameter.dim() >= 2 else no_decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_adamw(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    fused: bool = False,
) -> torch.optim.AdamW:
    """AdamW over :func:`parameter_groups`; ``fused`` picks the fused kernel (CPU or CUDA)."""
    kwargs = {"fused": True} if fused else {}
    return torch.optim.AdamW(parameter_groups(model, weight_decay), lr=lr, betas=betas, **kwargs)
