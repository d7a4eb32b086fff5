"""The training loop: ``train(config, out_dir)`` from scratch or from a checkpoint.

Bit-identical resume on CPU: a checkpoint after step s holds the weights, AdamW state, every
global RNG state and the data sampler's generator, and nothing between two steps draws
random numbers except the step itself (evaluation uses fixed batches and no dropout), so a
resumed run computes exactly the losses the uninterrupted run computed.

The parts, each its own module: :mod:`.session` (what a run holds: data, model, optimizer,
batches), :mod:`.resume` (what a checkpoint saves besides weights, and restoring it),
:mod:`.step` (one optimizer step, evaluation, the loss), :mod:`.checkpointer` (best / latest,
FSDP gathering, the files). This module only runs the loop over them: logging, evaluation
and checkpoint intervals, Ctrl-C and SIGTERM, and the run folder's lock (:mod:`.run_lock`).
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qkv.training import checkpoint as ckpt
from qkv.training import distributed as dist_utils
from qkv.training.checkpointer import Checkpointer
from qkv.training.config import TrainConfig
from qkv.training.errors import TrainingError, TrainingInterrupted
from qkv.training.limits import check_fits_memory
from qkv.training.loggers import RunLogger
from qkv.training.metrics import MetricsLog, perplexity, plot_losses
from qkv.training.progress import Progress
from qkv.training.run_dir import check_claimable
from qkv.training.run_lock import held
from qkv.training.session import TrainSession, say, start_session
from qkv.training.step import evaluate, optimizer_step

__all__ = ["TrainResult", "TrainingError", "TrainingInterrupted", "run", "train"]


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


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _StopFlag:
    """SIGINT (Ctrl-C) and SIGTERM (what schedulers and ``kill`` send first) set a flag the
    loop checks between steps; a second Ctrl-C interrupts at once, a second SIGTERM ends the
    process."""

    def __init__(self) -> None:
        self.raised: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for number in _STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.raised = signal.Signals(signum).name
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def __exit__(self, *exc: object) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)


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
    TrainingError for a diverged run, TrainingInterrupted after Ctrl-C or SIGTERM (checkpoint
    saved). The process holds ``out_dir``'s lock while it trains (rank 0 under torchrun): a
    second trainer on the folder is refused (:class:`~.run_lock.RunFolderInUse`).

    Example::

        >>> result = train(TrainConfig(max_iters=200), "runs/baby")
        >>> result.val_loss, result.checkpoint
    """
    out_dir = Path(out_dir).expanduser()
    env = dist_utils.setup(config.device)
    try:
        # Refusals that need no data come before anything is written or allocated.
        check_fits_memory(config, env.device, vocab_size=_vocab_lower_bound(config),
                          world_size=env.world_size)  # fmt: skip
        if env.is_main and resume_from is None:
            check_claimable(out_dir, overwrite=overwrite)  # before the lock creates anything
        with held(out_dir, enabled=env.is_main, say=lambda text: say(text, env, quiet)):
            session = start_session(
                config, out_dir, env, resume_from=resume_from, overwrite=overwrite, quiet=quiet
            )
            checkpointer = Checkpointer(session, resumed=resume_from is not None)
            return run(session, checkpointer, quiet=quiet)
    finally:
        dist_utils.teardown(env)


def run(session: TrainSession, checkpointer: Checkpointer, *, quiet: bool = False) -> TrainResult:
    """Step ``session`` to ``config.max_iters``, logging, evaluating and checkpointing at the
    configured intervals. Ctrl-C or SIGTERM stops at the next step boundary, saves, and raises
    TrainingInterrupted."""
    config, env, out_dir = session.config, session.env, session.out_dir
    metrics = MetricsLog(out_dir / "metrics.jsonl", enabled=env.is_main)
    logger = RunLogger(config.log, out_dir, config=config.to_dict(), enabled=env.is_main)
    progress = Progress(
        start=session.step,
        total=config.max_iters,
        enabled=config.progress and env.is_main and not quiet,
        verbose=env.is_main and not quiet,
    )
    session.model.train()
    started = time.perf_counter()
    last_time, last_saved, loss_value, val_loss = started, session.step, None, None
    info = None
    stop = _StopFlag()
    try:
        with stop:
            while session.step < config.max_iters:
                stats = optimizer_step(session)
                session.step += 1
                step, loss_value = session.step, stats.loss
                now = time.perf_counter()
                tokens_per_s = session.tokens_per_step / max(now - last_time, 1e-9)
                last_time = now
                if step % config.log_interval == 0 or step == config.max_iters:
                    metrics.write(
                        {
                            "step": step,
                            "loss": loss_value,
                            "lr": stats.lr,
                            "tokens": step * session.tokens_per_step,
                            "elapsed_s": round(now - started, 4),
                            "tokens_per_s": round(tokens_per_s, 1),
                        }
                    )
                    logger.scalars(step, {"train/loss": loss_value, "train/lr": stats.lr,
                                          "train/tokens_per_s": tokens_per_s,
                                          "train/grad_norm": stats.grad_norm})  # fmt: skip
                evaluated = step % config.eval_interval == 0 or step == config.max_iters
                if evaluated:
                    val_loss = _validation_loss(session)
                    metrics.write(
                        {"step": step, "val_loss": val_loss, "val_ppl": perplexity(val_loss)}
                    )
                    logger.scalars(step, {"val/loss": val_loss})
                    progress.write(
                        f"step {step}: train loss {loss_value:.4f}, val loss {val_loss:.4f} "
                        f"(perplexity {perplexity(val_loss):.2f})"
                    )
                    if env.is_main and config.plot:
                        plot_losses(out_dir / "metrics.jsonl", out_dir / "loss.png")
                progress.update(loss=loss_value, tokens_per_s=tokens_per_s, val_loss=val_loss)
                if step % config.save_every == 0 or step == config.max_iters:
                    info = checkpointer.save(step, val_loss if evaluated else None) or info
                    last_saved = step
                if dist_utils.any_across(stop.raised is not None, env):
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        progress.close()
        if session.step > last_saved:
            previous = {n: signal.signal(n, signal.SIG_IGN) for n in _STOP_SIGNALS}  # let it save
            try:
                checkpointer.save(session.step, None)
            finally:
                for number, handler in previous.items():
                    signal.signal(number, handler)
        by = f" by {stop.raised}" if stop.raised not in (None, "SIGINT") else ""
        raise TrainingInterrupted(
            f"interrupted{by} at step {session.step}; checkpoint saved in "
            f"{ckpt.describe_latest(out_dir)}; continue with `qkv train --resume {out_dir}`"
        ) from None
    finally:
        progress.close()
        metrics.close()
        logger.close()
    best = checkpointer.best
    return TrainResult(
        out_dir=out_dir,
        step=session.step,
        final_loss=loss_value,
        val_loss=val_loss,
        best_val_loss=best.val_loss if best is not None else None,
        checkpoint=info.path if info is not None else None,
        elapsed_s=time.perf_counter() - started,
    )


def _vocab_lower_bound(config: TrainConfig) -> int:
    """At least this many tokens before the tokenizer exists: the 256 bytes of byte-level BPE
    and its [UNK]; a character vocabulary may be tiny."""
    return 257 if config.tokenizer == "bpe" else 2


def _validation_loss(session: TrainSession) -> float:
    """Mean loss on the fixed evaluation batches, averaged over ranks."""
    local = evaluate(
        session.model,
        session.eval_batches,
        masked_lm=session.masked_lm,
        device=session.env.device,
        autocast=session.autocast,
    )
    return dist_utils.mean_across(local, session.env)
