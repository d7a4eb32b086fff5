"""Head ablation: run the model with some heads' outputs (``hook_z``) replaced.

``ablate`` runs one forward with the given heads zeroed or set to their mean;
``ablation_effects`` measures every head alone, in stacked forward passes. Example::

    >>> logits = qkv.interp.ablate(model, ids, heads=[(1, 2)])            # zero-ablation
    >>> effect = qkv.interp.ablation_effects(model, ids)  # (L, H) loss change per head
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qkv.interp.sweep import Metric, Task, check_ids, check_model, run_sweep

How = Literal["zero", "mean"]


def check_heads(model: nn.Module, heads: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The (layer, head) pairs, each checked against the model's shape."""
    n_layer, n_head = check_model(model, "ablate")
    checked = []
    for pair in heads:
        if (
            not isinstance(pair, (tuple, list))
            or len(pair) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in pair)
        ):
            raise ValueError(f"each head must be a (layer, head) pair of ints, got {pair!r}")
        layer, head = pair
        if not (0 <= layer < n_layer and 0 <= head < n_head):
            raise ValueError(
                f"head ({layer}, {head}) is out of range: the model has {n_layer} layers × "
                f"{n_head} heads (layer 0..{n_layer - 1}, head 0..{n_head - 1})"
            )
        checked.append((layer, head))
    return checked


def mean_z(model: nn.Module, reference_ids: Tensor) -> dict[int, Tensor]:
    """Each layer's ``hook_z`` averaged over the reference batch and its positions:
    {layer: (H, d_head)}."""
    check_ids(reference_ids, "reference_ids")
    n_layer, _ = check_model(model, "mean ablation")
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(n_layer)]
    with torch.no_grad():
        _, cache = model.run_with_cache(reference_ids, names_filter=names)  # type: ignore[operator]
    return {layer: cache[name].mean(dim=(0, 1)) for layer, name in enumerate(names)}


def ablate(
    model: nn.Module,
    ids: Tensor,
    *,
    heads: Sequence[tuple[int, int]],
    how: How = "zero",
    reference_ids: Tensor | None = None,
) -> Tensor:
    """The model's output on ``ids`` (B, T) with each (layer, head)'s ``hook_z`` replaced:
    by zeros (``how="zero"``), or by its mean over ``reference_ids`` (batch and positions,
    ``how="mean"``). Zero-ablating a head equals zeroing its columns of the out-projection."""
    check_ids(ids, "ids")
    pairs = check_heads(model, heads)
    if how not in ("zero", "mean"):
        raise ValueError(f"how must be 'zero' or 'mean', got {how!r}")
    if how == "mean" and reference_ids is None:
        raise ValueError("how='mean' needs reference_ids: the batch whose mean replaces each head")
    means = mean_z(model, reference_ids) if how == "mean" and reference_ids is not None else {}
    by_layer: dict[int, list[int]] = {}
    for layer, head in pairs:
        by_layer.setdefault(layer, []).append(head)

    def replace(z: Tensor, hook: object, layer: int) -> Tensor:  # z (B, T, H, D)
        z = z.clone()
        for head in by_layer[layer]:
            z[:, :, head] = means[layer][head] if means else 0.0
        return z

    hooks = [
        (f"blocks.{layer}.attn.hook_z", lambda z, h, layer=layer: replace(z, h, layer))
        for layer in by_layer
    ]
    with torch.no_grad():
        return model.run_with_hooks(ids, fwd_hooks=hooks)  # type: ignore[operator]


def next_token_loss(ids: Tensor, start: int = 0) -> Metric:
    """A metric: mean cross-entropy of predicting ids[:, t + 1] from position t, for
    t >= start. Logits (B, T, vocab) -> scalar."""

    def loss(logits: Tensor) -> Tensor:
        predictions = logits[:, start:-1].float()  # (B, T-1-start, vocab)
        return F.cross_entropy(predictions.transpose(1, 2), ids[:, start + 1 :])

    return loss


def ablation_effects(
    model: nn.Module,
    ids: Tensor,
    metric: Metric | None = None,
    *,
    batch_size: int | None = None,
) -> Tensor:
    """(n_layer, n_head): ``metric`` with each head zero-ablated alone minus the metric of
    the plain run. Default metric: the next-token loss over ``ids``, so a positive entry
    is how much the loss rises without that head."""
    check_ids(ids, "ids")
    n_layer, n_head = check_model(model, "ablation_effects")
    metric = metric or next_token_loss(ids)
    with torch.no_grad():
        baseline = float(metric(model(ids)))
    tasks = [Task(layer=l, head=h, position=None) for l in range(n_layer) for h in range(n_head)]

    def write(z: Tensor, task: Task) -> None:  # z (B, T, H, D)
        z[:, :, task.head] = 0.0

    values = run_sweep(
        model,
        ids,
        tasks,
        lambda layer: f"blocks.{layer}.attn.hook_z",
        write,
        metric,
        batch_size=batch_size,
    )
    return torch.tensor(values, dtype=torch.float64).view(n_layer, n_head) - baseline
