"""Run directories: claiming one for a new run, and finding what to resume from.

A new run refuses a directory holding another run (or anything else) unless ``overwrite``;
overwriting removes only the files a run writes, and only once the run folder's lock is held
(:mod:`.run_lock`), so it never races a live run. Resuming re-reads the saved TrainConfig,
refuses flags that would make the continued run a different run, and refuses a run folder
whose links or entries point outside it (:func:`qkv.io.run_folder.check_confined`).
"""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path
from typing import Any

from qkv.atomic import write_text_atomic
from qkv.io.run_folder import (
    CHECKPOINTS,
    LOCK_FILE,
    RUN_FILES,
    RUN_MARKER,
    check_confined,
    resolve_inside,
)
from qkv.training import checkpoint as ckpt
from qkv.training.config import RUN_DEFINING, TrainConfig
from qkv.training.run_lock import ensure_unlocked

__all__ = ["RUN_FILES", "check_claimable", "claim_run_dir", "plan_resume", "run_dir_of"]


def check_claimable(out_dir: Path, *, overwrite: bool) -> None:
    """Refuse ``out_dir`` for a new run when it is a file, or holds something (another run,
    other files) and ``overwrite`` is off. Writes nothing."""
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"--out-dir {out_dir} is a file; choose a directory")
    entries = sorted(p.name for p in out_dir.iterdir()) if out_dir.exists() else []
    entries = [name for name in entries if name != LOCK_FILE]
    if entries and not overwrite:
        if (out_dir / RUN_MARKER).exists() or (out_dir / CHECKPOINTS).exists():
            raise ValueError(
                f"output directory {out_dir} holds another run; continue it with "
                f"`qkv train --resume {out_dir}`, replace it with --overwrite, or pick another "
                "--out-dir"
            )
        raise ValueError(
            f"output directory {out_dir} is not empty ({', '.join(entries[:3])}...); pick another "
            "--out-dir or pass --overwrite"
        )


def claim_run_dir(
    out_dir: Path,
    config: TrainConfig,
    *,
    overwrite: bool,
    hardware: dict[str, Any] | None = None,
) -> None:
    """Create ``out_dir`` for a new run and write its ``run.json`` marker (hold the run
    folder's lock first: ``overwrite`` deletes the previous run's files). ``hardware``
    (:meth:`qkv.hardware.Precision.record`: capability and chosen precision) is recorded."""
    check_claimable(out_dir, overwrite=overwrite)
    if overwrite:
        for name in RUN_FILES:
            path = out_dir / name
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.is_dir():
                shutil.rmtree(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = {
        "kind": "qkv-train-run",
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "train_config": config.to_dict(),
    }
    if hardware is not None:
        marker["hardware"] = hardware
    write_text_atomic(out_dir / RUN_MARKER, json.dumps(marker, indent=2) + "\n")


def run_dir_of(checkpoint: Path, given: Path) -> Path:
    """The run folder a resumed run writes into: the folder holding ``checkpoints/`` for a
    checkpoint inside one (``checkpoint`` resolved), else the checkpoint folder itself."""
    if checkpoint.parent.name == CHECKPOINTS:
        return checkpoint.parent.parent
    return given


def plan_resume(path: str | Path, given: dict[str, Any]) -> tuple[TrainConfig, Path, Path]:
    """(config, checkpoint dir, run dir) for ``--resume path``.

    ``path`` is a run directory (its latest checkpoint) or a checkpoint folder. ``given`` holds
    the flags set on the command line: run-defining ones must equal the saved values; others
    (max_iters, eval_interval, progress, ...) override them. Raises FileNotFoundError for a
    missing checkpoint and ValueError for a corrupt one, a mismatching config, a run folder
    pointing outside itself, or one another process trains in.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"--resume {path}: no such directory; pass the --out-dir of an earlier run"
        )
    try:
        checkpoint = ckpt.resolve_checkpoint(path).resolve()  # out/latest -> its target
    except FileNotFoundError:
        raise FileNotFoundError(
            f"--resume {path}: no checkpoint found in it; start a run with `qkv train --out-dir "
            f"{path}` (with --overwrite if it is not empty)"
        ) from None
    run_dir = run_dir_of(checkpoint, path)
    if (path / RUN_MARKER).is_file():  # a run folder: its checkpoint must be its own
        resolve_inside(path, checkpoint, what="the checkpoint of run folder")
    check_confined(run_dir)
    ensure_unlocked(run_dir)
    ckpt.verify_checkpoint(checkpoint)
    try:
        saved = json.loads((checkpoint / ckpt.TRAIN_CONFIG).read_text(encoding="utf-8"))
        config = TrainConfig.from_dict(saved)
    except (OSError, json.JSONDecodeError, TypeError) as error:
        raise ValueError(
            f"checkpoint {checkpoint} has an unreadable train config ({error})"
        ) from None
    mismatched = [
        f"{name}={given[name]!r} (checkpoint: {saved[name]!r})"
        for name in RUN_DEFINING
        if name in given and _normalise(name, given[name]) != _normalise(name, saved[name])
    ]
    if mismatched:
        raise ValueError(
            f"--resume {path}: config does not match the checkpoint: {', '.join(mismatched)}; "
            "drop those flags to continue the run, or start a new run with another --out-dir"
        )
    config = TrainConfig.from_dict({**saved, **given})
    return config, checkpoint, run_dir


def _normalise(name: str, value: Any) -> Any:
    if name == "data" and value is not None:
        return str(Path(value).expanduser().resolve())
    return value
