"""The optimizers of a run: AdamW with nanoGPT's parameter groups (weight decay on 2-D and
larger weights only), or Muon on the hidden matrices with that AdamW on the rest.

Biases, norm gains and other 1-D parameters are not decayed. Embedding tables are 2-D and
decayed, as in nanoGPT (tied with the output projection, they are a weight matrix too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from qkv.training.muon import Muon, MuonWithAdamW, hidden_matrices

if TYPE_CHECKING:
    from qkv.training.config import TrainConfig


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


def make_optimizer(
    config: TrainConfig, model: nn.Module, device: torch.device
) -> torch.optim.AdamW | MuonWithAdamW:
    """``config.optimizer``'s optimizer over ``model``: AdamW, or Muon + AdamW
    (:mod:`qkv.training.muon`; Newton–Schulz in bf16 only where bf16 is native)."""
    betas = (config.beta1, config.beta2)
    if config.optimizer == "adamw":
        return make_adamw(
            model, lr=config.lr, weight_decay=config.weight_decay, betas=betas,
            fused=config.fused_adamw,
        )  # fmt: skip
    from qkv.hardware import probe

    return make_muon_adamw(
        model, lr=config.lr, muon_lr=config.muon_lr, weight_decay=config.weight_decay,
        betas=betas, momentum=config.muon_momentum, fused=config.fused_adamw,
        ns_dtype=torch.bfloat16 if probe(device).native_bf16 else None,
    )  # fmt: skip


def make_muon_adamw(
    model: nn.Module,
    *,
    lr: float,
    muon_lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    momentum: float = 0.95,
    fused: bool = False,
    ns_dtype: torch.dtype | None = None,
) -> MuonWithAdamW:
    """Muon (peak ``muon_lr``) on :func:`hidden_matrices`, AdamW (peak ``lr``, decay on its 2-D
    weights) on the rest; both follow the schedule set through ``param_groups``' ``lr``."""
    muon_params, adamw_params = hidden_matrices(model)
    if not muon_params:
        raise ValueError(
            f"{type(model).__name__} has no hidden weight matrices for Muon; use AdamW"
        )
    muon = Muon(
        muon_params, lr=lr, lr_scale=muon_lr / lr if lr > 0 else 0.0, momentum=momentum,
        weight_decay=weight_decay, ns_dtype=ns_dtype,
    )  # fmt: skip
    rest = nn.ParameterList(adamw_params)
    adamw = make_adamw(rest, lr=lr, weight_decay=weight_decay, betas=betas, fused=fused)
    return MuonWithAdamW(muon, adamw)
