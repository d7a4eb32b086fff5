"""One optimizer step and one evaluation pass; every loss of a run is :func:`loss_of`.

A step sets the scheduled learning rate, accumulates ``grad_accum`` micro-batches (gradient
all-reduce only on the last one), stops on a non-finite loss or gradient norm before the
weights change, clips, and steps AdamW. Nothing else draws random numbers, which is what
makes a resumed run bit-identical (see :mod:`qkv.training.trainer`).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from qkv.training import checkpoint as ckpt
from qkv.training import distributed as dist_utils
from qkv.training.errors import TrainingError
from qkv.training.schedule import learning_rate

if TYPE_CHECKING:
    from qkv.training.session import TrainSession


def loss_of(model: nn.Module, inputs: Tensor, labels: Tensor, masked_lm: bool) -> Tensor:
    """The model's mean loss on a batch: inputs (B, T) with causal-LM targets or masked-LM
    labels (B, T), -100 where a position does not count. The only place a run calls its
    model, so a change of the models' calling convention is one edit here.

    A plain (not DDP-wrapped or compiled) GPT without a final softcap, outside autocast,
    takes :func:`qkv.models.fused_language_model_loss`: the same loss without the (B·T, V)
    fp32 logits and their gradient in memory (412 MB each at GPT-2's vocabulary, 8 × 256)."""
    from qkv.models import GPT, fused_language_model_loss, language_model_loss, masked_lm_loss

    if masked_lm:
        return masked_lm_loss(model(inputs), labels)
    if (
        type(model) is GPT
        and model.config.final_softcap is None
        and not torch.is_autocast_enabled(inputs.device.type)
    ):
        hidden = model.final_hidden(inputs)  # (B, T, C)
        return fused_language_model_loss(hidden, model.lm_head.weight, labels)
    return language_model_loss(model(inputs), labels)


@dataclass(frozen=True, kw_only=True)
class StepStats:
    """What one optimizer step measured: mean loss over its micro-batches and ranks, and the
    learning rate it used."""

    loss: float
    lr: float
    grad_norm: float | None = None  # before clipping; None when --grad-clip 0


def optimizer_step(session: TrainSession) -> StepStats:
    """Optimizer step number ``session.step + 1`` (the caller advances ``session.step``).

    Raises TrainingError, without touching the weights, when the loss or the gradient norm
    is not finite.
    """
    config, env, model = session.config, session.env, session.model
    lr = learning_rate(
        session.step,
        lr=config.lr,
        min_lr=config.min_lr,
        warmup_iters=config.warmup_iters,
        decay_iters=config.decay_iters,
        shape=config.schedule,
        cooldown_fraction=config.cooldown_fraction,
    )
    for group in session.optimizer.param_groups:
        group["lr"] = lr
    total = 0.0
    for micro in range(config.grad_accum):
        inputs, labels = session.sampler.next()
        inputs, labels = inputs.to(env.device), labels.to(env.device)
        syncing = micro == config.grad_accum - 1 or not env.enabled
        context = contextlib.nullcontext() if syncing else dist_utils.no_gradient_sync(model, env)
        with context:
            with session.autocast():
                loss = loss_of(model, inputs, labels, session.masked_lm)
            (loss / config.grad_accum).backward()
        total += float(loss.detach())
    loss_value = dist_utils.mean_across(total / config.grad_accum, env)
    if not math.isfinite(loss_value):
        out_dir = session.out_dir
        raise TrainingError(
            f"loss became {loss_value} at step {session.step + 1}; stopped without saving. "
            f"The last good checkpoint is {ckpt.describe_latest(out_dir)}; lower --lr or keep "
            f"--grad-clip on, then `qkv train --resume {out_dir}`"
        )
    grad_norm = _clip_gradients(session) if config.grad_clip > 0 else None
    session.optimizer.step()
    session.optimizer.zero_grad(set_to_none=True)
    return StepStats(loss=loss_value, lr=lr, grad_norm=grad_norm)


def _clip_gradients(session: TrainSession) -> float:
    parameters = session.raw_model.parameters()
    norm = torch.nn.utils.clip_grad_norm_(parameters, session.config.grad_clip)
    if hasattr(norm, "full_tensor"):  # FSDP: a sharded (DTensor) norm
        norm = norm.full_tensor()
    if not torch.isfinite(norm):
        raise TrainingError(
            f"gradient norm became {float(norm)} at step {session.step + 1}; stopped without "
            f"saving. The last good checkpoint is {ckpt.describe_latest(session.out_dir)}"
        )
    return float(norm)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: list[tuple[Tensor, Tensor]],
    *,
    masked_lm: bool,
    device: torch.device,
    autocast: Any,
) -> float:
    """Mean loss over ``batches`` of (inputs (B, T), labels (B, T)) in eval mode (no
    dropout); restores the model's train mode. ``autocast()`` gives each batch's context."""
    was_training = model.training
    model.eval()
    total = 0.0
    for inputs, labels in batches:
        with autocast():
            total += float(loss_of(model, inputs.to(device), labels.to(device), masked_lm))
    model.train(was_training)
    return total / len(batches)
