"""Training checkpoints: written atomically, verified on load, pruned to the last k + best.

A run directory looks like::

    out/
      run.json                     marks the directory as a qkv training run
      metrics.jsonl, loss.png
      checkpoints/step-00000250/   one loadable model directory per checkpoint:
        config.json, model.safetensors   (qkv.save: qkv.load(dir) opens it)
        tokenizer.json                   (qkv.load_tokenizer(dir) opens it)
        train_config.json                TrainConfig
        train_state.pt                   optimizer, step, RNG and data-order states
        checkpoint.json                  step, val loss, SHA-256 of every file (written last)
      latest -> checkpoints/step-...  best -> checkpoints/step-...   (symlinks)

A checkpoint is assembled in ``checkpoints/.tmp-*``, every file fsynced, then renamed into
place and the ``latest`` link swapped atomically (:mod:`qkv.atomic`); a crash at any point
leaves the previous checkpoint and links intact (a stale ``.tmp-*`` folder is removed by the
next save).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from qkv.atomic import replace_dir_atomic, symlink_atomic

CHECKPOINTS = "checkpoints"
MANIFEST = "checkpoint.json"
STATE = "train_state.pt"
TRAIN_CONFIG = "train_config.json"
TOKENIZER = "tokenizer.json"
RUN_MARKER = "run.json"


@dataclass(frozen=True, kw_only=True)
class CheckpointInfo:
    """A checkpoint on disk: its folder, step and validation loss (None if not evaluated)."""

    path: Path
    step: int
    val_loss: float | None


def rng_state() -> dict[str, Any]:
    """Every global RNG state: torch CPU (and CUDA), python ``random``, numpy."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
        files = sorted(p for p in tmp.iterdir() if p.is_file())
        manifest = {
            "step": step,
            "val_loss": val_loss,
            "files": {p.name: _sha256(p) for p in files},
        }
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
    ``latest``). Raises FileNotFoundError saying what was looked for."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist; pass a run or checkpoint dir")
    if (path / MANIFEST).is_file() or (path / "config.json").is_file():
        return path
    latest = path / "latest"
    if latest.exists():
        return latest.resolve()
    root = path / CHECKPOINTS
    steps = sorted(root.glob("step-*")) if root.is_dir() else []
    if steps:
        return steps[-1]
    raise FileNotFoundError(
        f"no checkpoint in {path} (expected {path}/latest, {path}/{CHECKPOINTS}/step-* or a "
        "model directory with config.json); train one with `qkv train --out-dir DIR`"
    )


def verify_checkpoint(path: Path) -> dict[str, Any]:
    """The manifest of checkpoint ``path`` after checking every file's SHA-256.

    Raises ValueError naming the damaged file and how to recover.
    """
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise ValueError(
            f"{path} is not a complete training checkpoint (no {MANIFEST}); resume from another "
            f"one under {path.parent}"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(
            f"{manifest_path} is corrupt (not JSON); resume from another checkpoint"
        ) from None
    for name, digest in manifest.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise ValueError(f"checkpoint {path} is missing {name}; resume from another checkpoint")
        if _sha256(file) != digest:
            raise ValueError(
                f"checkpoint file {file} is corrupt (SHA-256 mismatch); resume from another "
                f"checkpoint under {path.parent}"
            )
    return manifest


def load_train_state(path: Path) -> dict[str, Any]:
    """``train_state.pt`` of checkpoint ``path`` (verify it first)."""
    try:
        return torch.load(path / STATE, map_location="cpu", weights_only=False)
    except Exception as error:
        raise ValueError(
            f"{path / STATE} could not be read ({type(error).__name__}); resume from another "
            "checkpoint"
        ) from None


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
