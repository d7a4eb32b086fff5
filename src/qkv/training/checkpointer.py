"""Saving a run's checkpoints: the :class:`Checkpointer` of a :class:`TrainSession`.

It owns what saving needs between saves: the best checkpoint so far (the ``best`` link and
pruning keep it), and under FSDP an unsharded copy of the model on rank 0 that each save
fills with the gathered full state, so the files are those of a one-process run. Every rank
calls :meth:`Checkpointer.save` (the gather is collective); only rank 0 writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qkv.training import checkpoint as ckpt
from qkv.training import distributed as dist_utils
from qkv.training.errors import TrainingError
from qkv.training.prepare import build_model, write_tokenizer_json
from qkv.training.resume import train_state
from qkv.training.session import TrainSession
from qkv.training.sharded_state import gather_full_state, unsharded_copy
from qkv.training.state_file import save_train_state


class Checkpointer:
    """Writes checkpoints of ``session`` into ``session.out_dir`` (see :mod:`.checkpoint`).

    ``resumed``: the run continues one in that folder, whose best checkpoint stays the one to
    beat. ``build_template`` builds an unsharded model of the run's architecture (FSDP saves
    only; default: the config's preset, as :func:`~qkv.training.prepare.build_model`).
    """

    def __init__(
        self,
        session: TrainSession,
        *,
        resumed: bool,
        build_template: Callable[[], nn.Module] | None = None,
    ) -> None:
        self.session = session
        self.best: ckpt.CheckpointInfo | None = (
            ckpt.best_checkpoint(session.out_dir) if resumed else None
        )
        self._build_template = build_template or (
            lambda: build_model(session.config, session.data.tokenizer)
        )
        self._unsharded: nn.Module | None = None  # rank 0's plain model that FSDP saves fill

    def save(self, step: int, val_loss: float | None) -> ckpt.CheckpointInfo | None:
        """Checkpoint the session after ``step`` (``val_loss``: None when not evaluated).

        Returns the new checkpoint on rank 0, None on the others. Raises TrainingError, and
        writes nothing, when a parameter is not finite; an OSError (disk full, read-only)
        says which checkpoint is still intact (the write is atomic: nothing half-written
        stays behind).
        """
        session = self.session
        source, full_optimizer_state = self._full_model_and_optimizer_state()
        info = None
        if source is not None:  # rank 0
            _check_finite(source, step, session.out_dir)
            state = train_state(session, step, full_optimizer_state=full_optimizer_state)
            try:
                info = ckpt.write_checkpoint(
                    session.out_dir,
                    step=step,
                    val_loss=val_loss,
                    write_files=lambda tmp: self._write_files(tmp, source, state),
                    keep_last=session.config.keep_last,
                    best=self.best,
                )
            except OSError as error:
                raise _with_context(error, step, session.out_dir) from None
            if val_loss is not None and (
                self.best is None or self.best.val_loss is None or val_loss < self.best.val_loss
            ):
                self.best = info
        dist_utils.barrier(session.env)
        return info

    def _full_model_and_optimizer_state(self) -> tuple[nn.Module | None, dict[str, Any] | None]:
        """(model whose weights to write, FSDP-gathered optimizer state or None) on rank 0;
        (None, None) on the other ranks once they took part in the gather."""
        session = self.session
        if not session.sharded:
            return (session.raw_model if session.env.is_main else None), None
        # Every rank takes part in gathering the full weights and optimizer state.
        model_state, optimizer_state = gather_full_state(session.model, session.optimizer)
        if not session.env.is_main:
            return None, None
        if self._unsharded is None:
            with torch.random.fork_rng(devices=[]):  # leave the training RNG as it was
                self._unsharded = self._build_template()
        return unsharded_copy(self._unsharded, model_state), optimizer_state

    def _write_files(self, directory: Path, model: nn.Module, state: dict[str, Any]) -> None:
        session = self.session
        if session.base is not None:  # a fine-tune: the adapter only, or the whole model
            from qkv.training.finetune import write_model_files

            write_model_files(model, directory, session.base)
        else:
            ckpt.save_model_dir(model, directory)
        write_tokenizer_json(session.data.tokenizer, directory / ckpt.TOKENIZER)
        (directory / ckpt.TRAIN_CONFIG).write_text(
            json.dumps(session.config.to_dict(), indent=2) + "\n", encoding="utf-8"
        )
        save_train_state(state, directory / ckpt.STATE)


def _check_finite(model: nn.Module, step: int, out_dir: Path) -> None:
    for name, parameter in model.named_parameters():
        if not torch.isfinite(parameter).all():
            raise TrainingError(
                f"parameter {name} is not finite at step {step}; not saved. "
                f"Lower --lr and resume from {out_dir / 'latest'}"
            )


def _with_context(error: OSError, step: int, out_dir: Path) -> OSError:
    """``error`` saying the failed write was checkpoint ``step`` and what is left intact."""
    if error.errno is None:
        return error
    context = (
        f"{error.strerror} while writing checkpoint step {step}; the last good checkpoint "
        f"({ckpt.describe_latest(out_dir)}) is intact: fix this, then continue with "
        f"`qkv train --resume {out_dir}`"
    )
    return type(error)(error.errno, context, error.filename)
