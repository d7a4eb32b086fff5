"""Activation patching: run the clean prompt with one activation taken from a corrupted run.

``patch_heads`` sweeps every (layer, head) (and optionally every position) of one kind of
head activation; ``patch_residual`` every (layer, position) of the residual stream or a
sublayer's output. Each sweep runs in stacked forward passes (see :mod:`qkv.interp.sweep`).
Example::

    >>> def logit_diff(logits):  # (B, T, vocab) -> scalar
    ...     return (logits[:, -1, answer] - logits[:, -1, wrong]).mean()
    >>> effect = qkv.interp.patch_heads(model, clean_ids, corrupt_ids, logit_diff)  # (L, H)
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from qkv.interp.sweep import Metric, Task, check_model, check_pair, run_sweep

HeadHook = Literal["z", "q", "k", "v", "pattern"]
ResidualHook = Literal["resid_pre", "attn_out", "mlp_out"]
_HEAD_HOOKS = {
    "z": "attn.hook_z",
    "q": "attn.hook_q",
    "k": "attn.hook_k",
    "v": "attn.hook_v",
    "pattern": "attn.hook_pattern",
}
_RESIDUAL_HOOKS = ("resid_pre", "attn_out", "mlp_out")


def query_heads_moved(model: nn.Module, kv_head: int) -> list[int]:
    """The query heads that read key/value head ``kv_head``: patching its ``k`` or ``v``
    moves all of them at once under grouped-query attention (query head i reads key/value
    head i // (H / Hkv))."""
    _, n_head = check_model(model, "query_heads_moved")
    n_kv = getattr(model.config, "n_kv_head", None) or n_head
    if not 0 <= kv_head < n_kv:
        raise ValueError(f"kv_head {kv_head} is out of range: the model has {n_kv} key/value heads")
    group = n_head // n_kv
    return list(range(kv_head * group, (kv_head + 1) * group))


def patch_heads(
    model: nn.Module,
    clean_ids: Tensor,
    corrupt_ids: Tensor,
    metric: Metric,
    *,
    hook: HeadHook = "z",
    per_position: bool = False,
    batch_size: int | None = None,
) -> Tensor:
    """``metric(logits)`` of the clean run with one head's ``hook`` activation from the
    corrupted run, for every head: (n_layer, heads), or (n_layer, heads, T) with
    ``per_position`` (only that query position patched).

    ``clean_ids``, ``corrupt_ids``: (B, T) of the same shape. ``hook``: ``"z"`` (the head's
    output before the output projection), ``"q"``, ``"k"``, ``"v"`` or ``"pattern"``.
    ``heads`` is n_head, except for ``"k"``/``"v"`` under grouped-query attention, where it is
    n_kv_head: key/value head g feeds the query heads :func:`query_heads_moved` names.
    ``"pattern"`` runs the patched layers through the reference attention path.
    """
    n_layer, _ = check_model(model, "patch_heads")
    check_pair(clean_ids, corrupt_ids)
    if hook not in _HEAD_HOOKS:
        raise ValueError(f"hook must be one of {sorted(_HEAD_HOOKS)}, got {hook!r}")
    suffix = _HEAD_HOOKS[hook]
    names = [f"blocks.{layer}.{suffix}" for layer in range(n_layer)]
    with torch.no_grad():
        _, corrupt = model.run_with_cache(corrupt_ids, names_filter=names)  # type: ignore[operator]
    head_dim = 1 if hook == "pattern" else 2  # pattern (B, H, Tq, Tk); others (B, T, H, D)
    heads = corrupt[names[0]].shape[head_dim]
    length = clean_ids.shape[1]
    positions: list[int | None] = list(range(length)) if per_position else [None]
    tasks = [
        Task(layer=layer, head=head, position=position)
        for layer in range(n_layer)
        for head in range(heads)
        for position in positions
    ]

    def write(activation: Tensor, task: Task) -> None:
        source = corrupt[names[task.layer]]
        where = slice(None) if task.position is None else task.position
        if head_dim == 1:
            activation[:, task.head, where] = source[:, task.head, where]
        else:
            activation[:, where, task.head] = source[:, where, task.head]

    values = run_sweep(
        model, clean_ids, tasks, names.__getitem__, write, metric, batch_size=batch_size
    )
    shape = (n_layer, heads, length) if per_position else (n_layer, heads)
    return torch.tensor(values, dtype=torch.float64).view(shape)


def patch_residual(
    model: nn.Module,
    clean_ids: Tensor,
    corrupt_ids: Tensor,
    metric: Metric,
    *,
    hook: ResidualHook = "resid_pre",
    batch_size: int | None = None,
) -> Tensor:
    """``metric(logits)`` of the clean run with ``blocks.{l}.hook_{hook}`` at one position
    taken from the corrupted run, for every layer and position: (n_layer, T)."""
    n_layer, _ = check_model(model, "patch_residual")
    check_pair(clean_ids, corrupt_ids)
    if hook not in _RESIDUAL_HOOKS:
        raise ValueError(f"hook must be one of {list(_RESIDUAL_HOOKS)}, got {hook!r}")
    names = [f"blocks.{layer}.hook_{hook}" for layer in range(n_layer)]
    with torch.no_grad():
        _, corrupt = model.run_with_cache(corrupt_ids, names_filter=names)  # type: ignore[operator]
    length = clean_ids.shape[1]
    tasks = [
        Task(layer=layer, head=None, position=position)
        for layer in range(n_layer)
        for position in range(length)
    ]

    def write(activation: Tensor, task: Task) -> None:  # activation (B, T, C)
        activation[:, task.position] = corrupt[names[task.layer]][:, task.position]

    values = run_sweep(
        model, clean_ids, tasks, names.__getitem__, write, metric, batch_size=batch_size
    )
    return torch.tensor(values, dtype=torch.float64).view(n_layer, length)
