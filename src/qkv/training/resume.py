"""What a checkpoint saves of a run besides its weights, and putting a run back from it.

``train_state.pt`` holds the optimizer state, the data sampler's generator, every global RNG
state of rank 0, the step and the corpus hash, all as tensors and plain values
(:mod:`.state_file` writes and reads the file). :func:`train_state` writes exactly what
:func:`restore` reads, so the two sides of resuming are read together here. Other ranks do
not save their RNG: their dropout streams are re-derived from the seed, rank and step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from qkv.io.run_folder import check_confined, resolve_inside
from qkv.training import checkpoint as ckpt
from qkv.training.metrics import truncate_metrics
from qkv.training.prepare import read_tokenizer_json
from qkv.training.sharded_state import FULL_BY_NAME, load_full_optimizer_state
from qkv.training.state_file import rng_state, set_rng_state, tagged

if TYPE_CHECKING:
    from qkv.data.tokenizer import Tokenizer
    from qkv.training.prepare import PreparedData
    from qkv.training.session import TrainSession


@dataclass(frozen=True, kw_only=True)
class ResumePoint:
    """A verified checkpoint to continue from: its folder, saved state and tokenizer."""

    directory: Path
    step: int
    state: dict[str, Any]
    tokenizer: Tokenizer


def read_resume_point(directory: Path, *, run_dir: Path | None = None) -> ResumePoint:
    """Verify checkpoint ``directory`` (SHA-256 of every file) and read its training state.

    ``run_dir``: the folder the resumed run writes into; the checkpoint must lie inside it
    and the folder must not point outside itself, so a run never writes into another one.
    Raises ValueError naming a missing, damaged or unreadable file, or the escaping link.
    """
    if run_dir is not None:
        check_confined(run_dir)
        directory = resolve_inside(run_dir, directory, what="the checkpoint to resume,")
    manifest = ckpt.verify_checkpoint(directory)
    state = ckpt.load_train_state(directory)
    return ResumePoint(
        directory=directory,
        step=manifest["step"],
        state=state,
        tokenizer=read_tokenizer_json(directory / ckpt.TOKENIZER),
    )


def check_same_corpus(point: ResumePoint, data: PreparedData) -> None:
    """Refuse to continue a run on a corpus whose content changed since the checkpoint."""
    if point.state["corpus_sha256"] != data.corpus_sha256:
        raise ValueError(
            f"the corpus {data.corpus_path} changed since this run's checkpoint (content hash "
            "differs); resume with the original text or start a new run with --out-dir"
        )


def train_state(
    session: TrainSession, step: int, *, full_optimizer_state: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``train_state.pt`` contents after ``step`` (call on rank 0).

    ``full_optimizer_state`` is the FSDP-gathered state keyed by parameter name; without it the
    optimizer's own (index-keyed) state dict is saved.
    """
    gathered = full_optimizer_state is not None
    return tagged(
        {
            "optimizer": full_optimizer_state if gathered else session.optimizer.state_dict(),
            "optimizer_format": FULL_BY_NAME if gathered else "torch",
            "sampler": session.sampler.state_dict(),
            "rng": rng_state(),
            "step": step,
            "corpus_sha256": session.data.corpus_sha256,
        }
    )


def restore(session: TrainSession, point: ResumePoint) -> None:
    """Put ``session`` (freshly opened) back at ``point``: optimizer, data order, step, RNG.

    The metrics log loses the records after the step, which the resumed run writes again.
    """
    state = point.state
    if state.get("optimizer_format") == FULL_BY_NAME:
        load_full_optimizer_state(session.model, session.optimizer, state["optimizer"])
    else:
        session.optimizer.load_state_dict(state["optimizer"])
    session.sampler.load_state_dict(state["sampler"])
    session.step = state["step"]
    env = session.env
    if env.is_main:
        truncate_metrics(session.out_dir / "metrics.jsonl", session.step)
    if env.rank == 0:
        set_rng_state(state["rng"])
    else:  # other ranks' dropout streams are re-derived, not saved
        torch.manual_seed(session.config.seed + 1000 * env.rank + session.step)


def seed_fresh_run(session: TrainSession) -> None:
    """Give ranks other than 0 their own dropout stream (rank 0 keeps the model's seed)."""
    if session.env.rank > 0:
        torch.manual_seed(session.config.seed + 1000 * session.env.rank)
