"""A run's working set before its first step: the :class:`TrainSession`.

:func:`start_session` is the ``qkv train`` recipe: read the checkpoint to resume (or, once the
corpus proved usable, claim the run directory), prepare the corpus, build the preset model, then
:func:`open_session` wraps it for DDP / FSDP, makes the optimizer and the batch sources, and
:func:`qkv.training.resume.restore` puts a resumed run back where it stopped.

Other recipes reuse the parts rather than growing them: fine-tuning passes its own
``raw_model`` (pretrained weights, adapters with ``requires_grad`` set; the optimizer takes
only trainable parameters) to :func:`open_session`; another data source builds a
:class:`TrainSession` with its own :class:`BatchSource`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from qkv.data.batches import BatchSampler, fixed_eval_batches
from qkv.hardware import resolve_precision
from qkv.training import distributed as dist_utils
from qkv.training import resume
from qkv.training.config import TrainConfig
from qkv.training.limits import check_work_bounds
from qkv.training.muon import MuonWithAdamW
from qkv.training.optim import make_optimizer
from qkv.training.prepare import PreparedData, build_model, load_weights, prepare_data
from qkv.training.run_dir import claim_run_dir


class BatchSource(Protocol):
    """Training batches whose order is part of the checkpoint (see :class:`BatchSampler`)."""

    def next(self) -> tuple[Tensor, Tensor]:
        """(inputs (b, T), labels (b, T)) of this rank."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(kw_only=True)
class TrainSession:
    """Everything a run holds between optimizer steps.

    ``raw_model`` is the model itself (FSDP2 shards it in place); ``model`` is what a step
    calls: ``raw_model``, its DDP wrapper, or either compiled. ``step`` counts finished
    optimizer steps.
    """

    config: TrainConfig
    out_dir: Path
    env: dist_utils.Distributed
    data: PreparedData
    raw_model: nn.Module
    model: nn.Module
    optimizer: torch.optim.Optimizer | MuonWithAdamW
    sampler: BatchSource
    eval_batches: list[tuple[Tensor, Tensor]]
    autocast: Callable[[], AbstractContextManager[Any]]
    step: int = 0
    base: Any = None  # the FinetuneBase of a fine-tune (qkv.training.finetune), else None

    @property
    def masked_lm(self) -> bool:
        return self.data.masking is not None

    @property
    def sharded(self) -> bool:
        """True when FSDP shards the model over more than one process."""
        return self.config.fsdp and self.env.enabled

    @property
    def tokens_per_step(self) -> int:
        return self.config.batch_size * self.config.grad_accum * self.config.block_size


def say(message: str, env: dist_utils.Distributed, quiet: bool) -> None:
    """``qkv: message`` on stderr, from rank 0 only."""
    if env.is_main and not quiet:
        print(f"qkv: {message}", file=sys.stderr)


def autocast_factory(config: TrainConfig, device: torch.device) -> Callable[[], Any]:
    """A fresh bf16 autocast context per call where ``config.precision`` resolves to bf16 on
    ``device`` (see :mod:`qkv.hardware`), else a null context."""
    if resolve_precision(config.precision, device).dtype != "bf16":
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def start_session(
    config: TrainConfig,
    out_dir: Path,
    env: dist_utils.Distributed,
    *,
    resume_from: str | Path | None,
    overwrite: bool,
    quiet: bool,
) -> TrainSession:
    """The ``qkv train`` session: a new run in ``out_dir``, or the run of checkpoint
    ``resume_from`` restored to its step, optimizer, data order and RNG states."""
    point = None
    if resume_from is not None:
        point = resume.read_resume_point(Path(resume_from), run_dir=out_dir)
        say(f"resuming {out_dir} from step {point.step}", env, quiet)
    dist_utils.barrier(env)
    if env.enabled:
        mode = "FSDP (sharded)" if config.fsdp else "DDP"
        say(f"{mode} over {env.world_size} processes on {env.device.type}", env, quiet)
    elif config.fsdp:
        say("--fsdp: one process, so nothing to shard; training unsharded", env, quiet)

    base = None
    if config.init_from is not None:  # a fine-tune: the base brings model and tokenizer
        from qkv.training import finetune

        base = finetune.open_base(config)
        say(finetune.describe(config), env, quiet)
    tokenizer = base.tokenizer if base is not None else None
    data: Any
    if base is not None and finetune.is_records(config):  # JSONL instruction / chat records
        from qkv.training.record_data import prepare_records

        data = prepare_records(config, base.tokenizer, masked_lm=base.masked_lm, quiet=quiet)
    else:
        tokenizer = tokenizer or (point.tokenizer if point is not None else None)
        masked_lm = base.masked_lm if base is not None else None
        data = prepared_once(config, env, tokenizer, quiet, masked_lm=masked_lm)
        check_work_bounds(config, data)
    if point is not None:
        resume.check_same_corpus(point, data)
    if point is None and env.is_main:  # the data is usable: only now the folder is claimed
        precision = resolve_precision(config.precision, env.device)
        if config.precision == "auto":
            machine = precision.capability.describe()
            say(f"precision auto: {precision.dtype} ({machine})", env, quiet)
        claim_run_dir(out_dir, config, overwrite=overwrite, hardware=precision.record())
    if base is not None:
        raw_model = finetune.prepare_model(config, base)
        if point is not None:
            finetune.load_checkpoint_weights(raw_model, point.directory, base)
    else:
        raw_model = build_model(config, data.tokenizer)
        if point is not None:
            load_weights(raw_model, point.directory)
    session = open_session(config, out_dir, env, data=data, raw_model=raw_model)
    session.base = base
    if point is not None:
        resume.restore(session, point)
    else:
        resume.seed_fresh_run(session)
    return session


def prepared_once(
    config: TrainConfig,
    env: dist_utils.Distributed,
    tokenizer: Any,
    quiet: bool,
    *,
    masked_lm: bool | None = None,
) -> PreparedData:
    """Rank 0 prepares (or finds cached) the token shards while the other ranks wait at a
    barrier, then they open the same shards: no rank tokenizes twice or holds the corpus.
    A failure on rank 0 still meets the barrier, and the others then raise the same error."""
    if env.is_main:
        try:
            return prepare_data(config, tokenizer=tokenizer, quiet=quiet, masked_lm=masked_lm)
        finally:
            dist_utils.barrier(env)
    dist_utils.barrier(env)
    return prepare_data(config, tokenizer=tokenizer, quiet=True, masked_lm=masked_lm)


def open_session(
    config: TrainConfig,
    out_dir: Path,
    env: dist_utils.Distributed,
    *,
    data: PreparedData,
    raw_model: nn.Module,
) -> TrainSession:
    """Wrap ``raw_model`` for this process (device, DDP / FSDP2, compile), make its AdamW and
    the batch sources of ``data``; the session starts at step 0."""
    raw_model.to(env.device)
    model = dist_utils.wrap(raw_model, env, fsdp=config.fsdp and env.enabled)
    optimizer = make_optimizer(config, raw_model, env.device)
    if config.compile:
        model = torch.compile(model)
    precision = resolve_precision(config.precision, env.device)
    if precision.warning and env.is_main:
        print(f"qkv: {precision.warning}", file=sys.stderr)
    autocast = autocast_factory(config, env.device)
    sampler, eval_batches = batch_sources(config, env, data)
    return TrainSession(
        config=config,
        out_dir=out_dir,
        env=env,
        data=data,
        raw_model=raw_model,
        model=model,
        optimizer=optimizer,
        sampler=sampler,
        eval_batches=eval_batches,
        autocast=autocast,
    )


def batch_sources(
    config: TrainConfig, env: dist_utils.Distributed, data: PreparedData
) -> tuple[BatchSampler, list[tuple[Tensor, Tensor]]]:
    """This rank's training sampler (seed ``config.seed``) and the fixed evaluation batches
    (seed + 1, their own generator, so evaluating never moves the training data order)."""
    if not isinstance(data, PreparedData):  # records (qkv.training.record_data)
        from qkv.training.record_data import record_sources

        return record_sources(config, env, data)  # type: ignore[return-value]
    shape: dict[str, Any] = {
        "block_size": config.block_size,
        "batch_size": config.batch_size,
        "rank": env.rank,
        "world_size": env.world_size,
        "masking": data.masking,
    }
    sampler = BatchSampler(data.train, seed=config.seed, **shape)
    eval_batches = fixed_eval_batches(
        data.val, n_batches=config.eval_iters, seed=config.seed + 1, **shape
    )
    return sampler, eval_batches
