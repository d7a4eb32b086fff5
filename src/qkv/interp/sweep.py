"""The batched intervention sweep behind patching and ablation.

Every intervention of a sweep (one head, or one head at one position, at one layer) is one
copy of the clean batch in a stacked forward pass: copy j of the batch gets intervention j,
written by a hook at that layer. A full layer × head sweep of a small model is a handful of
forward passes instead of one per head.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

Metric = Callable[[Tensor], Tensor | float]
# write(activation of copy j (B, ...), task) changes it in place.
Writer = Callable[[Tensor, "Task"], None]

# Activation tokens per stacked forward pass: large enough to keep the CPU busy, small
# enough for a GPT-2-sized model (~4k tokens × 768 floats per activation).
TOKENS_PER_PASS = 4096


@dataclass(frozen=True, kw_only=True)
class Task:
    """One intervention: ``layer``, ``head`` (or None for a residual position), ``position``
    (None = every position)."""

    layer: int
    head: int | None
    position: int | None


def check_model(model: nn.Module, what: str) -> tuple[int, int]:
    """(n_layer, n_head) of a hooked qkv model, or a clear error."""
    config = getattr(model, "config", None)
    if not hasattr(model, "hook_points") or config is None:
        raise ValueError(
            f"{what} needs a qkv model with hook points (qkv.models.GPT, Bert or "
            f"BertForMaskedLM), got {type(model).__name__}"
        )
    return int(config.n_layer), int(config.n_head)


def check_ids(ids: Tensor, name: str) -> Tensor:
    if not isinstance(ids, Tensor) or ids.dim() != 2 or ids.dtype not in (torch.int64, torch.int32):
        shape = tuple(ids.shape) if isinstance(ids, Tensor) else type(ids).__name__
        raise ValueError(
            f"{name} must be an integer tensor of token ids (batch, seq), got {shape}; "
            "add a batch dim with .unsqueeze(0)"
        )
    return ids


def check_pair(clean_ids: Tensor, corrupt_ids: Tensor) -> None:
    check_ids(clean_ids, "clean_ids")
    check_ids(corrupt_ids, "corrupt_ids")
    if clean_ids.shape != corrupt_ids.shape:
        raise ValueError(
            f"clean and corrupted prompts must have the same shape (batch, tokens) to patch "
            f"position by position, got {tuple(clean_ids.shape)} and "
            f"{tuple(corrupt_ids.shape)}; reword one so both tokenize to the same length"
        )


def as_float(value: Tensor | float) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"metric(logits) must return one number (a scalar tensor or float), got a "
                f"tensor of shape {tuple(value.shape)}; reduce it, e.g. with .mean()"
            )
        return float(value.detach())
    return float(value)


def run_sweep(
    model: nn.Module,
    ids: Tensor,
    tasks: Sequence[Task],
    hook_name: Callable[[int], str],
    write: Writer,
    metric: Metric,
    *,
    batch_size: int | None = None,
) -> list[float]:
    """``metric(logits)`` of ``ids`` (B, T) under each task's intervention, in task order.

    ``hook_name(layer)`` names the hook point each task writes at; ``batch_size`` is the
    number of interventions per forward pass (default: TOKENS_PER_PASS tokens' worth).
    """
    batch, length = ids.shape
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    per_pass = batch_size or max(1, TOKENS_PER_PASS // (batch * length))
    values: list[float] = []
    for start in range(0, len(tasks), per_pass):
        chunk = list(tasks[start : start + per_pass])
        values.extend(_run_chunk(model, ids, chunk, hook_name, write, metric))
    return values


def _run_chunk(
    model: nn.Module,
    ids: Tensor,
    chunk: list[Task],
    hook_name: Callable[[int], str],
    write: Writer,
    metric: Metric,
) -> list[float]:
    """One stacked forward pass: copy j of ``ids`` gets ``chunk[j]``'s intervention."""
    batch = ids.shape[0]
    by_layer: dict[int, list[tuple[int, Task]]] = {}
    for copy, task in enumerate(chunk):
        by_layer.setdefault(task.layer, []).append((copy, task))

    def intervene(activation: Tensor, hook: object, layer: int) -> Tensor:
        stacked = activation.clone().view(len(chunk), batch, *activation.shape[1:])
        for copy, task in by_layer[layer]:
            write(stacked[copy], task)
        return stacked.view(activation.shape)

    hooks = [
        (hook_name(layer), lambda a, h, layer=layer: intervene(a, h, layer)) for layer in by_layer
    ]
    with torch.no_grad():
        stacked_ids = ids.repeat(len(chunk), 1)  # (n·B, T), copy-major
        logits = model.run_with_hooks(stacked_ids, fwd_hooks=hooks)  # type: ignore[operator]
        logits = logits.view(len(chunk), batch, *logits.shape[1:])  # (n, B, T, ...)
        return [as_float(metric(logits[copy])) for copy in range(len(chunk))]
