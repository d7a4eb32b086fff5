"""Training checkpoints: written atomically, verified on load, pruned to the last k + best.

A run directory looks like::

    out/
      run.json                     marks the directory as a qkv training run
      train.lock                   pid, host and start of the process training in it (flock)
      metrics.jsonl, loss.png
      checkpoints/step-00000250/   one loadable model directory per checkpoint:
        config.json, model.safetensors   (qkv.save: qkv.load(dir) opens it)
        tokenizer.json                   (qkv.load_tokenizer(dir) opens it)
        train_config.json                TrainConfig
        train_state.pt                   optimizer, step, RNG and data-order states, as
                                         tensors and plain values (read weights_only)
        checkpoint.json                  step, val loss, SHA-256 of every file (written last)
      latest -> checkpoints/step-...  best -> checkpoints/step-...   (symlinks)

A checkpoint is assembled in ``checkpoints/.tmp-*``, every file fsynced, then renamed into
place and the ``latest`` link swapped atomically (:mod:`qkv.atomic`); a crash at any point
leaves the previous checkpoint and links intact (a stale ``.tmp-*`` folder is removed by the
next save). Readers never follow a link out of the run folder, check every file's SHA-256
against the manifest (:mod:`qkv.io.integrity`), and read ``train_state.pt`` as data only
(:mod:`.state_file`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from qkv.atomic import replace_dir_atomic, symlink_atomic
from qkv.io.integrity import MANIFEST, hash_files, read_manifest, verify_files
from qkv.io.run_folder import (
    CHECKPOINTS,
    checkpoint_of_run,
    confined_location,
    resolve_inside,
)
from qkv.training.state_file import STATE
from qkv.training.state_file import load_train_state as _load_state_file

TRAIN_CONFIG = "train_config.json"
TOKENIZER = "tokenizer.json"


@dataclass(frozen=True, kw_only=True)
class CheckpointInfo:
    """A checkpoint on disk: its folder, step and validation loss (None if not evaluated)."""

    path: Path
    step: int
    val_loss: float | None


def save_model_dir(model: nn.Module, directory: Path) -> None:
    """Weights + model config into ``directory`` in the format ``qkv.load`` reads."""
    from qkv.io import save

    save(model, directory)


def link(run_dir: Path, name: str, target: Path) -> None:
    """Point ``run_dir/name`` at ``target`` (relative symlink), swapped atomically."""
    symlink_atomic(run_dir / name, target)


def write_checkpoint(
    run_dir: Path,
    *,
    step: int,
    val_loss: float | None,
    write_files: Callable[[Path], None],
    keep_last: int,
    best: CheckpointInfo | None,
) -> CheckpointInfo:
    """Write checkpoint ``step`` atomically; ``write_files(tmp_dir)`` fills it.

    Updates the ``latest`` link (and ``best`` when ``val_loss`` beats ``best``) and deletes
    checkpoints beyond the ``keep_last`` newest, never the best one. Returns the new info.
    """
    root = run_dir / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    name = f"step-{step:08d}"
    tmp = root / f".tmp-{name}"
    tmp.mkdir()
    try:
        write_files(tmp)
        manifest = {"step": step, "val_loss": val_loss, "files": hash_files(tmp)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        # An existing folder is the same step saved again (e.g. Ctrl-C right after a save).
        final = replace_dir_atomic(tmp, root / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    info = CheckpointInfo(path=final, step=step, val_loss=val_loss)
    link(run_dir, "latest", final)
    if val_loss is not None and (best is None or best.val_loss is None or val_loss < best.val_loss):
        best = info
        link(run_dir, "best", final)
    keep = {best.path.name} if best is not None else set()
    steps = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-"))
    keep |= {p.name for p in steps[-keep_last:]}
    for path in steps:
        if path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)
    return info


def describe_latest(run_dir: Path) -> str:
    """The folder ``run_dir/latest`` points at, for messages ("(none yet)" before a save)."""
    latest = run_dir / "latest"
    return str(latest.resolve()) if latest.exists() else "(none yet)"


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder meant by ``path``: a checkpoint itself, or a run directory (its
    ``latest``). Links a run folder holds must point inside it (ValueError otherwise).
    Raises FileNotFoundError saying what was looked for."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist; pass a run or checkpoint dir")
    path = confined_location(path)
    if (path / MANIFEST).is_file() or (path / "config.json").is_file():
        return path
    return checkpoint_of_run(path, prefer="latest")


def verify_checkpoint(path: Path) -> dict[str, Any]:
    """The manifest of checkpoint ``path`` after checking every file's SHA-256.

    Raises ValueError naming the damaged file and how to recover.
    """
    manifest = read_manifest(path)
    if manifest is None:
        raise ValueError(
            f"{path} is not a complete training checkpoint (no {MANIFEST}); resume from another "
            f"one under {path.parent}"
        )
    verify_files(path, manifest=manifest)
    return manifest


def load_train_state(path: Path) -> dict[str, Any]:
    """``train_state.pt`` of checkpoint ``path`` (verify it first), read as data only."""
    return _load_state_file(resolve_inside(path, path / STATE, what="training state"))


def list_checkpoints(run_dir: Path) -> list[CheckpointInfo]:
    """Complete checkpoints of a run, oldest first."""
    root = run_dir / CHECKPOINTS
    infos = []
    for path in sorted(root.glob("step-*")) if root.is_dir() else []:
        try:
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        infos.append(
            CheckpointInfo(path=path, step=manifest["step"], val_loss=manifest["val_loss"])
        )
    return infos


def best_checkpoint(run_dir: Path) -> CheckpointInfo | None:
    """The checkpoint with the lowest validation loss, if any was evaluated."""
    scored = [c for c in list_checkpoints(run_dir) if c.val_loss is not None]
    return min(scored, key=lambda c: c.val_loss) if scored else None  # type: ignore[arg-type,return-value]


def load_for_inference(path: str | Path, *, device: str = "cpu") -> tuple[nn.Module, Any, Path]:
    """(model in eval mode, qkv tokenizer, checkpoint dir) from a run or checkpoint folder."""
    from qkv.io import load, load_tokenizer

    directory = resolve_checkpoint(path)
    model = load(directory, device=device)
    if not (directory / TOKENIZER).is_file() and not (directory / "vocab.txt").is_file():
        raise FileNotFoundError(f"{directory} has no tokenizer.json; it is not a qkv train output")
    tokenizer = load_tokenizer(directory)
    return model, tokenizer, directory
