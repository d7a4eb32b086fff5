"""The training loop: ``train(config, out_dir)`` from scratch or from a checkpoint.

Bit-identical resume on CPU: a checkpoint after step s holds the weights, AdamW state, every
global RNG state and the data sampler's generator, and nothing between two steps draws
random numbers except the step itself (evaluation uses fixed batches and no dropout), so a
resumed run computes exactly the losses the uninterrupted run computed.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from qkv.data.batches import BatchSampler, fixed_eval_batches
from qkv.training import checkpoint as ckpt
from qkv.training import distributed as dist_utils
from qkv.training.config import TrainConfig
from qkv.training.metrics import MetricsLog, perplexity, plot_losses, truncate_metrics
from qkv.training.optim import make_adamw
from qkv.training.prepare import build_model, load_weights, prepare_data
from qkv.training.progress import Progress
from qkv.training.run_dir import claim_run_dir
from qkv.training.schedule import learning_rate
from qkv.training.sharded_state import (
    FULL_BY_NAME,
    gather_full_state,
    load_full_optimizer_state,
    unsharded_copy,
)


class TrainingError(ValueError):
    """A run stopped by a fault it could name (non-finite loss, ...); checkpoints are intact."""


class TrainingInterrupted(Exception):
    """Ctrl-C: the run saved a checkpoint at a step boundary and stopped."""


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    """What a finished run reports."""

    out_dir: Path
    step: int
    final_loss: float | None
    val_loss: float | None
    best_val_loss: float | None
    checkpoint: Path | None
    elapsed_s: float


def loss_of(model: nn.Module, inputs: Tensor, labels: Tensor, masked_lm: bool) -> Tensor:
    """The model's mean loss on a batch (causal-LM targets or masked-LM labels)."""
    output = model(inputs, labels=labels) if masked_lm else model(inputs, targets=labels)
    return output[1]


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: list[tuple[Tensor, Tensor]], *, masked_lm: bool, device, autocast
) -> float:
    """Mean loss over ``batches`` in eval mode (no dropout); restores train mode."""
    was_training = model.training
    model.eval()
    total = 0.0
    for inputs, labels in batches:
        with autocast():
            total += float(loss_of(model, inputs.to(device), labels.to(device), masked_lm))
    model.train(was_training)
    return total / len(batches)


def _autocast_factory(config: TrainConfig, device: torch.device):
    if not config.bf16:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)


class _StopFlag:
    """SIGINT sets a flag the loop checks between steps (a second Ctrl-C interrupts at once)."""

    def __init__(self) -> None:
        self.raised = False
        self._previous: Any = None

    def __enter__(self) -> _StopFlag:
        import threading

        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.raised = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume_from: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = False,
) -> TrainResult:
    """Train ``config`` into ``out_dir``; with ``resume_from`` (a checkpoint folder) continue
    that run bit-identically. Raises ValueError / FileNotFoundError for bad input,
    TrainingError for a diverged run, TrainingInterrupted after Ctrl-C (checkpoint saved)."""
    out_dir = Path(out_dir).expanduser()
    env = dist_utils.setup(config.device)
    try:
        return _train(config, out_dir, env, resume_from, overwrite, quiet)
    finally:
        dist_utils.teardown(env)


def _say(message: str, env: dist_utils.Distributed, quiet: bool) -> None:
    if env.is_main and not quiet:
        print(f"qkv: {message}", file=sys.stderr)


def _train(
    config: TrainConfig,
    out_dir: Path,
    env: dist_utils.Distributed,
    resume_from: str | Path | None,
    overwrite: bool,
    quiet: bool,
) -> TrainResult:
    state: dict[str, Any] | None = None
    tokenizer = None
    if resume_from is not None:
        checkpoint_dir = Path(resume_from)
        manifest = ckpt.verify_checkpoint(checkpoint_dir)
        state = ckpt.load_train_state(checkpoint_dir)
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(checkpoint_dir / "tokenizer.json"))
        _say(f"resuming {out_dir} from step {manifest['step']}", env, quiet)
    elif env.is_main:
        claim_run_dir(out_dir, config, overwrite=overwrite)
    dist_utils.barrier(env)
    if env.enabled:
        mode = "FSDP (sharded)" if config.fsdp else "DDP"
        _say(f"{mode} over {env.world_size} processes on {env.device.type}", env, quiet)
    elif config.fsdp:
        _say("--fsdp: one process, so nothing to shard; training unsharded", env, quiet)

    data = prepare_data(config, tokenizer=tokenizer, quiet=quiet or not env.is_main)
    if state is not None and state["corpus_sha256"] != data.corpus_sha256:
        raise ValueError(
            f"the corpus {data.corpus_path} changed since this run's checkpoint (content hash "
            "differs); resume with the original text or start a new run with --out-dir"
        )
    masked_lm = data.masking is not None
    raw_model = build_model(config, data.tokenizer)
    if resume_from is not None:
        load_weights(raw_model, Path(resume_from))
    raw_model.to(env.device)
    sharded = config.fsdp and env.enabled
    model = dist_utils.wrap(raw_model, env, fsdp=sharded)  # FSDP2 shards raw_model in place
    optimizer = make_adamw(
        raw_model,
        lr=config.lr,
        weight_decay=config.weight_decay,
        betas=(config.beta1, config.beta2),
        fused=config.fused_adamw,
    )
    if config.compile:
        model = torch.compile(model)
    autocast = _autocast_factory(config, env.device)
    sampler = BatchSampler(
        data.train,
        block_size=config.block_size,
        batch_size=config.batch_size,
        seed=config.seed,
        rank=env.rank,
        world_size=env.world_size,
        masking=data.masking,
    )
    eval_batches = fixed_eval_batches(
        data.val,
        block_size=config.block_size,
        batch_size=config.batch_size,
        n_batches=config.eval_iters,
        seed=config.seed + 1,
        rank=env.rank,
        world_size=env.world_size,
        masking=data.masking,
    )
    step = 0
    best: ckpt.CheckpointInfo | None = None
    if state is not None:
        if state.get("optimizer_format") == FULL_BY_NAME:
            load_full_optimizer_state(model, optimizer, state["optimizer"])
        else:
            optimizer.load_state_dict(state["optimizer"])
        sampler.load_state_dict(state["sampler"])
        step = state["step"]
        best = ckpt.best_checkpoint(out_dir)
        if env.is_main:
            truncate_metrics(out_dir / "metrics.jsonl", step)
        if env.rank == 0:
            ckpt.set_rng_state(state["rng"])
        else:  # other ranks' dropout streams are re-derived, not saved
            torch.manual_seed(config.seed + 1000 * env.rank + step)
    elif env.rank > 0:
        torch.manual_seed(config.seed + 1000 * env.rank)

    unsharded: nn.Module | None = None  # rank 0's plain model that FSDP checkpoints fill

    def save(current_step: int, val_loss: float | None) -> ckpt.CheckpointInfo | None:
        nonlocal best, unsharded
        info = None
        source, optimizer_state = raw_model, None
        if sharded:  # gather the full weights and optimizer state (every rank takes part)
            model_state, optimizer_state = gather_full_state(model, optimizer)
            if env.is_main:
                if unsharded is None:
                    with torch.random.fork_rng(devices=[]):  # leave the training RNG as it was
                        unsharded = build_model(config, data.tokenizer)
                source = unsharded_copy(unsharded, model_state)
        if env.is_main:
            for name, parameter in source.named_parameters():
                if not torch.isfinite(parameter).all():
                    raise TrainingError(
                        f"parameter {name} is not finite at step {current_step}; not saved. "
                        f"Lower --lr and resume from {out_dir / 'latest'}"
                    )
            extra = {
                "optimizer": optimizer.state_dict() if optimizer_state is None else optimizer_state,
                "optimizer_format": "torch" if optimizer_state is None else FULL_BY_NAME,
                "sampler": sampler.state_dict(),
                "rng": ckpt.rng_state(),
                "step": current_step,
                "corpus_sha256": data.corpus_sha256,
            }

            def write_files(tmp: Path) -> None:
                ckpt.save_model_dir(source, tmp)
                (tmp / "tokenizer.json").write_text(data.tokenizer.to_str(), encoding="utf-8")
                (tmp / ckpt.TRAIN_CONFIG).write_text(
                    json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8"
                )
                torch.save(extra, tmp / ckpt.STATE)

            info = ckpt.write_checkpoint(
                out_dir,
                step=current_step,
                val_loss=val_loss,
                write_files=write_files,
                keep_last=config.keep_last,
                best=best,
            )
            if val_loss is not None and (
                best is None or best.val_loss is None or val_loss < best.val_loss
            ):
                best = info
        dist_utils.barrier(env)
        return info

    metrics = MetricsLog(out_dir / "metrics.jsonl", enabled=env.is_main)
    progress = Progress(
        start=step,
        total=config.max_iters,
        enabled=config.progress and env.is_main and not quiet,
        verbose=env.is_main and not quiet,
    )
    tokens_per_step = config.batch_size * config.grad_accum * config.block_size
    model.train()
    started = time.perf_counter()
    last_time, last_saved, loss_value, val_loss = started, step, None, None
    info = None
    try:
        with _StopFlag() as stop:
            while step < config.max_iters:
                lr = learning_rate(
                    step,
                    lr=config.lr,
                    min_lr=config.min_lr,
                    warmup_iters=config.warmup_iters,
                    decay_iters=config.decay_iters,
                )
                for group in optimizer.param_groups:
                    group["lr"] = lr
                total = 0.0
                for micro in range(config.grad_accum):
                    inputs, labels = sampler.next()
                    inputs, labels = inputs.to(env.device), labels.to(env.device)
                    syncing = micro == config.grad_accum - 1 or not env.enabled
                    context = (
                        contextlib.nullcontext()
                        if syncing
                        else dist_utils.no_gradient_sync(model, env)
                    )
                    with context:
                        with autocast():
                            loss = loss_of(model, inputs, labels, masked_lm)
                        (loss / config.grad_accum).backward()
                    total += float(loss.detach())
                loss_value = dist_utils.mean_across(total / config.grad_accum, env)
                if not math.isfinite(loss_value):
                    raise TrainingError(
                        f"loss became {loss_value} at step {step + 1}; stopped without saving. "
                        f"The last good checkpoint is {_latest(out_dir)}; lower --lr or keep "
                        f"--grad-clip on, then `qkv train --resume {out_dir}`"
                    )
                if config.grad_clip > 0:
                    norm = torch.nn.utils.clip_grad_norm_(raw_model.parameters(), config.grad_clip)
                    if hasattr(norm, "full_tensor"):  # FSDP: a sharded (DTensor) norm
                        norm = norm.full_tensor()
                    if not torch.isfinite(norm):
                        raise TrainingError(
                            f"gradient norm became {float(norm)} at step {step + 1}; stopped "
                            f"without saving. The last good checkpoint is {_latest(out_dir)}"
                        )
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                now = time.perf_counter()
                tokens_per_s = tokens_per_step / max(now - last_time, 1e-9)
                last_time = now
                if step % config.log_interval == 0 or step == config.max_iters:
                    metrics.write(
                        {
                            "step": step,
                            "loss": loss_value,
                            "lr": lr,
                            "tokens": step * tokens_per_step,
                            "elapsed_s": round(now - started, 4),
                            "tokens_per_s": round(tokens_per_s, 1),
                        }
                    )
                evaluated = step % config.eval_interval == 0 or step == config.max_iters
                if evaluated:
                    val_loss = dist_utils.mean_across(
                        evaluate(
                            model, eval_batches, masked_lm=masked_lm, device=env.device,
                            autocast=autocast,
                        ),
                        env,
                    )  # fmt: skip
                    metrics.write(
                        {"step": step, "val_loss": val_loss, "val_ppl": perplexity(val_loss)}
                    )
                    progress.write(
                        f"step {step}: train loss {loss_value:.4f}, val loss {val_loss:.4f} "
                        f"(perplexity {perplexity(val_loss):.2f})"
                    )
                    if env.is_main and config.plot:
                        plot_losses(out_dir / "metrics.jsonl", out_dir / "loss.png")
                progress.update(loss=loss_value, tokens_per_s=tokens_per_s, val_loss=val_loss)
                if step % config.save_every == 0 or step == config.max_iters:
                    info = save(step, val_loss if evaluated else None) or info
                    last_saved = step
                if dist_utils.any_across(stop.raised, env):
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        progress.close()
        if step > last_saved:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the save finish
            try:
                save(step, None)
            finally:
                signal.signal(signal.SIGINT, signal.default_int_handler)
        raise TrainingInterrupted(
            f"interrupted at step {step}; checkpoint saved in {_latest(out_dir)}; continue with "
            f"`qkv train --resume {out_dir}`"
        ) from None
    finally:
        progress.close()
        metrics.close()
    elapsed = time.perf_counter() - started
    return TrainResult(
        out_dir=out_dir,
        step=step,
        final_loss=loss_value,
        val_loss=val_loss,
        best_val_loss=best.val_loss if best is not None else None,
        checkpoint=info.path if info is not None else None,
        elapsed_s=elapsed,
    )


def _latest(out_dir: Path) -> str:
    latest = out_dir / "latest"
    return str(latest.resolve()) if latest.exists() else "(none yet)"
