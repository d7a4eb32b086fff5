"""Sizes a run cannot have, refused from arithmetic before anything is allocated.

* **Memory** (:func:`check_fits_memory`): a lower bound of what training needs, from the
  parameter count of the model built on the meta device (no memory), 16 bytes per parameter
  (fp32 weight, gradient and two AdamW moments), the activations of one micro-batch (at least
  16 floats per token per layer plus the logits and their gradient) and the fixed evaluation
  batches. It is compared with the memory of the device: RAM plus swap (within the cgroup
  limit) on CPU, the GPU's own on CUDA. Only a run that cannot fit is refused.
* **Silent work** (:func:`check_work_bounds`): one evaluation drawing more than ten times the
  distinct windows of the validation split, or one optimizer step reading more than ten times
  the training split, would run for minutes with nothing on screen while repeating the same
  data; both are refused with the largest value that makes sense.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from qkv.training.config import TrainConfig

if TYPE_CHECKING:
    from qkv.training.prepare import PreparedData

# Per token and layer, a transformer block keeps at least this many floats for its backward
# (LayerNorm in/out twice, q/k/v, attention out, the 4x MLP hidden before and after GELU).
FLOATS_PER_TOKEN_LAYER = 16
REPEAT_LIMIT = 10  # "ten times the data" bounds of check_work_bounds


def format_bytes(count: float) -> str:
    """``2.0 TB`` style, powers of 1000 as disks and RAM are sold."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(count) < 1000 or unit == "PB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def host_memory_bytes() -> int:
    """RAM plus swap of this machine, capped by a cgroup memory limit (containers)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("SwapTotal:"):
                total += int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        limit = _read_int(limit_file)
        if limit is not None and 0 < limit < total:
            total = limit
    return total


def device_memory_bytes(device: torch.device) -> tuple[int, str]:
    """(bytes of memory, a description) of ``device``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        total = torch.cuda.get_device_properties(index).total_memory
        return total, f"GPU {index} has {format_bytes(total)}"
    total = host_memory_bytes()
    return total, f"this machine has {format_bytes(total)} of memory (RAM and swap)"


def parameter_count(config: TrainConfig, vocab_size: int) -> int:
    """Parameters of the run's model, counted on the meta device (nothing allocated)."""
    from qkv.models import build, preset
    from qkv.training.prepare import is_masked_lm

    overrides: dict[str, object] = {"vocab_size": vocab_size, "n_positions": config.block_size}
    for name in ("n_layer", "n_head", "n_embd"):
        if getattr(config, name) is not None:
            overrides[name] = getattr(config, name)
    model_config = preset(config.model, **overrides)
    with torch.device("meta"):
        model = build(model_config, masked_lm=is_masked_lm(config.model))
    return sum(p.numel() for p in model.parameters())


def check_fits_memory(
    config: TrainConfig, device: torch.device, *, vocab_size: int, world_size: int = 1
) -> None:
    """Refuse a run whose lower-bound memory need on one process exceeds ``device``'s memory.

    ``vocab_size`` may be a lower bound of the real vocabulary (it is not known before the
    tokenizer is trained); each of ``world_size`` processes holds its share of the batch (and
    of the parameters under FSDP). Raises ValueError with the need, its parts and the fix.
    """
    from qkv.models import preset

    model_config = preset(config.model)
    layers = config.n_layer or getattr(model_config, "n_layer", 1)
    width = config.n_embd or getattr(model_config, "n_embd", 1)
    params = parameter_count(config, vocab_size)
    states = 16 * params // (world_size if config.fsdp else 1)
    tokens = max(config.batch_size // world_size, 1) * config.block_size
    activations = 4 * tokens * (layers * FLOATS_PER_TOKEN_LAYER * width + 2 * vocab_size)
    evaluation = config.eval_iters * tokens * 2 * 8  # inputs and labels, int64
    need = states + activations + evaluation
    have, where = device_memory_bytes(device)
    if need > have:
        raise ValueError(
            f"this run needs at least {format_bytes(need)} of memory and cannot be allocated: "
            f"{format_bytes(states)} for {params:,} parameters with gradients and AdamW state, "
            f"{format_bytes(activations)} of activations for a micro-batch of "
            f"{config.batch_size} x {config.block_size} tokens, {format_bytes(evaluation)} for "
            f"{config.eval_iters} evaluation batches; {where}. Lower --block-size, --batch-size "
            "(use --grad-accum for a larger batch), --n-embd / --n-layer or --eval-iters"
        )


def check_work_bounds(config: TrainConfig, data: PreparedData) -> None:
    """Refuse an evaluation or an optimizer step that would repeat its data more than
    :data:`REPEAT_LIMIT` times (minutes of silent work, nothing learned from the repeats)."""
    span = config.block_size if data.masking is not None else config.block_size + 1
    distinct = max(len(data.val) - span + 1, 1)
    drawn = config.eval_iters * config.batch_size
    if drawn > REPEAT_LIMIT * distinct:
        most = max(REPEAT_LIMIT * distinct // config.batch_size, 1)
        raise ValueError(
            f"--eval-iters {config.eval_iters} draws {drawn:,} windows per evaluation, more "
            f"than {REPEAT_LIMIT} times the {distinct:,} distinct windows of the validation "
            f"split: each evaluation would run for long, silently, repeating the same text; "
            f"pass --eval-iters {most} or fewer"
        )
    per_step = config.batch_size * config.grad_accum * config.block_size
    if per_step > REPEAT_LIMIT * len(data.train):
        most = max(REPEAT_LIMIT * len(data.train) // (config.batch_size * config.block_size), 1)
        raise ValueError(
            f"--batch-size {config.batch_size} with --grad-accum {config.grad_accum} makes one "
            f"optimizer step read {per_step:,} tokens, more than {REPEAT_LIMIT} times the "
            f"{len(data.train):,}-token training split: each step would run for long with "
            f"nothing on screen; pass --grad-accum {most} or fewer, a smaller --batch-size, or "
            "a longer corpus"
        )
