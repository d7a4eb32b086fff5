"""Checkpoint state for FSDP-sharded training: gathered in full, written like any other.

Under ``--fsdp`` every rank holds 1/N of each weight and of the optimizer state. A checkpoint
gathers both in full (a collective call on every rank, tensors offloaded to CPU) so that rank
0 writes the same files as a single-process run: ``qkv.load``, ``qkv generate`` and
``qkv eval`` read them unchanged, and a resumed run may use another number of processes.
The optimizer state is then keyed by parameter name (``optimizer_format = "full-by-name"``)
rather than by parameter index, and is loaded back through the same API.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from qkv.training.prepare import load_state

FULL_BY_NAME = "full-by-name"


def _options(**kwargs: Any):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kwargs)


def gather_full_state(
    model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(model state, optimizer state by parameter name), full tensors on CPU on every rank.

    Collective: every rank must call it.
    """
    from torch.distributed.checkpoint.state_dict import get_state_dict

    return get_state_dict(model, optimizer, options=_options(cpu_offload=True))


def load_full_optimizer_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    """Load a state from :func:`gather_full_state` into a sharded or plain model's
    optimizer (each rank keeps its own shard)."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, optim_state_dict=state, options=_options())


def unsharded_copy(template: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """``template`` (a freshly built, unsharded model of the same config) holding ``state``.

    Tied parameters may appear under one name only; any other missing or unexpected name, or
    a shape that differs, is a ValueError.
    """
    load_state(template, state, source="the gathered FSDP state")
    return template
