"""The language-model head and its cross-entropy fused, in chunks of rows.

``F.cross_entropy(lm_head(hidden))`` holds the fp32 logits (B·T, V), their log-softmax and,
in the backward, their gradient: at GPT-2's vocabulary and a batch of 8 × 256 that is
2048 × 50257 × 4 B = 412 MB per copy. :func:`fused_language_model_loss` computes the same
mean loss chunk by chunk of rows and, while a chunk's logits are at hand, its gradients
(softmax − one-hot, scaled by 1 / the counted positions) with respect to the hidden states
and the head's weight, so no more than ``chunk_rows`` × V logits ever exist and the backward
only scales the stored gradients by the incoming one (Liger-Kernel's "fused linear cross
entropy" idea, in plain torch ops).

Same result as ``F.cross_entropy(hidden @ weight.T, targets, ignore_index=-100)`` in fp32
(fp64 for fp64 inputs; tests/models/test_chunked_loss.py checks values and gradients against
it); a batch where every target is -100 gives nan, as F.cross_entropy does.
"""

from __future__ import annotations

import torch
from torch import Tensor

from qkv.models.losses import IGNORE_INDEX

# Logits per chunk: 2**25 fp32 values = 128 MB (667 rows at GPT-2's 50257 vocabulary). Larger
# chunks re-read the (V, C) weight fewer times; smaller ones hold less memory.
CHUNK_ELEMENTS = 2**25


def fused_language_model_loss(
    hidden: Tensor, weight: Tensor, targets: Tensor, *, chunk_rows: int | None = None
) -> Tensor:
    """Mean cross-entropy of the logits ``hidden @ weight.T`` against ``targets``, -100
    ignored, never materialising more than ``chunk_rows`` rows of logits.

    hidden (B, T, C) (e.g. :meth:`qkv.models.GPT.final_hidden`), weight (V, C) (the head's,
    ``model.lm_head.weight``), targets (B, T). Gradients flow to ``hidden`` and, when it
    requires grad, to ``weight``.

    Example::

        >>> hidden = model.final_hidden(inputs)                            # (B, T, C)
        >>> loss = fused_language_model_loss(hidden, model.lm_head.weight, targets)
        >>> # == qkv.models.language_model_loss(model(inputs), targets)
    """
    if hidden.dim() != 3 or weight.dim() != 2 or hidden.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"hidden must be (batch, seq, C) and weight (vocab, C) with the same C, got "
            f"{tuple(hidden.shape)} and {tuple(weight.shape)}"
        )
    if targets.shape != hidden.shape[:-1]:
        raise ValueError(
            f"targets must have shape {tuple(hidden.shape[:-1])} (batch, seq), "
            f"got {tuple(targets.shape)}"
        )
    rows = chunk_rows or max(1, CHUNK_ELEMENTS // weight.shape[0])
    if rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    flat = hidden.reshape(-1, hidden.shape[-1])  # (B·T, C)
    labels = targets.reshape(-1)  # (B·T,)
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _LinearCrossEntropy.apply(flat, weight, labels, rows)
    return _chunked(flat, weight, labels, rows, need_hidden=False, need_weight=False)[0]


def _chunked(
    hidden: Tensor, weight: Tensor, labels: Tensor, rows: int, *, need_hidden: bool,
    need_weight: bool,
) -> tuple[Tensor, Tensor | None, Tensor | None]:  # fmt: skip
    """(mean loss, d loss / d hidden (N, C), d loss / d weight (V, C)), chunk by chunk."""
    exact = torch.promote_types(hidden.dtype, torch.float32)  # the loss's dtype: fp32 or fp64
    counted = labels != IGNORE_INDEX  # (N,)
    count = counted.sum().to(exact)
    total = torch.zeros((), dtype=exact, device=hidden.device)
    grad_hidden = torch.empty_like(hidden) if need_hidden else None
    grad_weight = None
    if need_weight:  # accumulated in fp32 over the chunks, whatever the weight's dtype
        grad_weight = torch.zeros(weight.shape, dtype=exact, device=weight.device)
    for start in range(0, hidden.shape[0], rows):
        chunk = hidden[start : start + rows]  # (n, C)
        keep = counted[start : start + rows]  # (n,)
        label = labels[start : start + rows].clamp(min=0).unsqueeze(1)  # (n, 1); -100 -> 0
        logits = (chunk @ weight.t()).to(exact)  # (n, V)
        norm = torch.logsumexp(logits, dim=-1)  # (n,)
        picked = logits.gather(1, label).squeeze(1)  # (n,)
        total += torch.where(keep, norm - picked, 0.0).sum()
        if not (need_hidden or need_weight):
            continue
        # d loss / d logits = (softmax - one_hot) * keep / count, in place over the logits:
        # exp(logits - norm + log(keep / count)) is the scaled softmax (0 on ignored rows).
        scale = keep.to(exact) / count  # (n,)
        logits.sub_((norm - scale.log()).unsqueeze(1)).exp_()
        logits.scatter_add_(1, label, -scale.unsqueeze(1))
        grad_logits = logits.to(hidden.dtype)  # (n, V)
        if grad_hidden is not None:
            torch.mm(grad_logits, weight, out=grad_hidden[start : start + rows])
        if grad_weight is not None:
            grad_weight.addmm_(grad_logits.t().to(exact), chunk.to(exact))
    return total / count, grad_hidden, grad_weight


class _LinearCrossEntropy(torch.autograd.Function):
    """Loss forward; the gradients are computed there too and only scaled in backward."""

    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, labels: Tensor, rows: int) -> Tensor:  # type: ignore[override]
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        loss, grad_hidden, grad_weight = _chunked(
            hidden, weight, labels, rows, need_hidden=need_hidden, need_weight=need_weight
        )
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        ctx.grads = (grad_hidden, grad_weight)
        return loss

    @staticmethod
    def backward(ctx, grad_loss: Tensor):  # type: ignore[override]
        if ctx.grads is None:
            raise RuntimeError(
                "fused_language_model_loss supports one backward per forward (its stored "
                "gradients are scaled in place); compute the loss again for a second one"
            )
        grad_hidden, grad_weight = ctx.grads
        ctx.grads = None
        if grad_hidden is not None:
            grad_hidden.mul_(grad_loss)
        if grad_weight is not None:
            grad_weight.mul_(grad_loss)
        return grad_hidden, grad_weight, None, None
