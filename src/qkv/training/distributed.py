"""Data parallelism under ``torchrun``: process group set-up, model wrapping, reductions.

The same ``qkv train`` command runs alone or as N processes (``torchrun --nproc_per_node N``):
gloo on CPU, NCCL on GPUs. Each rank takes its shard of the same global batch (see
:class:`qkv.data.BatchSampler`), DDP averages gradients, and only rank 0 writes files.
With ``--fsdp``, PyTorch's FSDP2 (``fully_shard``, each transformer block and then the whole
model) replaces DDP: every rank keeps 1/N of the weights, gradients and optimizer state and
gathers a block's weights only while that block runs; checkpoints gather the full state.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True, kw_only=True)
class Distributed:
    """Where this process stands: rank, world size, device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(requested: str, local_rank: int = 0) -> torch.device:
    """``auto``: this rank's GPU when CUDA is available, else CPU."""
    if requested == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {requested!r} asked for but CUDA is not available; use --device cpu"
        )
    return device


def setup(requested_device: str) -> Distributed:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1; else a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed(device=pick_device(requested_device))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def wrap(model: nn.Module, env: Distributed, *, fsdp: bool = False) -> nn.Module:
    """DDP around ``model`` when distributed, or ``model`` sharded in place by FSDP2 with
    ``fsdp``; the model itself when not distributed."""
    if not env.enabled:
        return model
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        for block in transformer_blocks(model):
            fully_shard(block)
        fully_shard(model)  # embeddings, final norm and (tied) head
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [env.device.index] if env.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """The model's repeated layers: the modules of its first nn.ModuleList (GPT's
    ``transformer.h``, BERT's encoder layers), each its own FSDP unit."""
    for module in model.modules():
        if isinstance(module, nn.ModuleList):
            return list(module)
    return []


@contextlib.contextmanager
def no_gradient_sync(model: nn.Module, env: Distributed) -> Iterator[None]:
    """Skip the gradient all-reduce / reduce-scatter for the micro-batches in between
    (gradient accumulation): DDP's ``no_sync``, FSDP2's ``set_requires_gradient_sync``."""
    if not env.enabled:
        yield
    elif hasattr(model, "no_sync"):
        with model.no_sync():
            yield
    else:
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)


def mean_across(value: float, env: Distributed) -> float:
    """Average of a Python float over ranks (``value`` itself when not distributed)."""
    if not env.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=env.device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / env.world_size


def any_across(flag: bool, env: Distributed) -> bool:
    """True if ``flag`` is true on any rank."""
    if not env.enabled:
        return flag
    tensor = torch.tensor([1 if flag else 0], dtype=torch.int32, device=env.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def barrier(env: Distributed) -> None:
    if env.enabled:
        dist.barrier()


def teardown(env: Distributed) -> None:
    """Meet every rank at a barrier and leave the process group for process exit to end.

    ``destroy_process_group`` on CPU (gloo, torch 2.13) aborted one rank in ~1 of 4 runs
    ("terminate called without an active exception" from a background thread, 2026-11-24),
    after all work was saved, when a peer's process had exited first. So rank 0 leaves
    last, and the ``qkv train`` CLI exits workers with ``os._exit`` right after this.
    """
    if env.enabled and dist.is_initialized():
        dist.barrier()
        if env.rank == 0:
            time.sleep(0.5)  # let the other ranks leave first: a peer's exit aborted them
