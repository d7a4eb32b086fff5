"""The folder ``qkv train`` writes, as readers see it: which checkpoint a run folder means, and
the rule that nothing in a run folder points outside it.

Layout (written by :mod:`qkv.training.checkpoint`)::

    out/
      run.json  metrics.jsonl  loss.png  train.lock
      checkpoints/step-00000250/{config.json, model.safetensors, tokenizer.json, ...,
                                  checkpoint.json}
      latest -> checkpoints/step-...   best -> checkpoints/step-...

Every link and path a run folder holds (``latest``, ``best``, ``checkpoints`` and what is in
it, ``metrics.jsonl``, ...) must resolve inside the folder: a folder whose ``latest`` points
into another run's ``checkpoints/`` would otherwise let a resumed run write, prune and log
into that other run. :func:`check_confined` refuses such a folder, naming the link.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

CHECKPOINTS = "checkpoints"
RUN_MARKER = "run.json"
LOCK_FILE = "train.lock"
LINKS = ("latest", "best")
# Everything a run writes at the top of its folder (``--overwrite`` removes these).
RUN_FILES = (RUN_MARKER, "metrics.jsonl", "loss.png", *LINKS, CHECKPOINTS)


def resolve_inside(root: Path, path: Path, *, what: str) -> Path:
    """``path`` resolved (links followed), which must lie inside ``root`` (resolved).

    Raises ValueError naming ``what`` and where it points when it leaves ``root`` or is a
    symlink loop.
    """
    base = root.resolve()
    try:
        target = path.resolve(strict=False)
    except RuntimeError:  # Python 3.11 reports a symlink loop this way
        raise ValueError(f"{what} {path} is a symlink loop; remove it") from None
    if not target.is_relative_to(base):
        shown = os.readlink(path) if path.is_symlink() else str(target)
        raise ValueError(
            f"{what} {path} points outside its run folder {base} (to {shown}); refusing to "
            "follow it: a run folder may only refer to its own files. Remove or fix the link"
        )
    return target


def check_confined(run_dir: Path) -> None:
    """Refuse a run folder holding a link or path that resolves outside it.

    Checks the entries a run reads or writes: ``run.json``, ``metrics.jsonl``, ``loss.png``,
    ``latest``, ``best``, ``checkpoints`` and every entry of ``checkpoints/``.
    """
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_symlink() or path.exists():
            resolve_inside(run_dir, path, what=f"{name!r} of run folder")
    root = run_dir / CHECKPOINTS
    if root.is_dir():
        for entry in root.iterdir():
            resolve_inside(run_dir, entry, what="checkpoint entry")


def is_run_folder(path: Path) -> bool:
    """True for a folder ``qkv train`` wrote (``run.json``, ``checkpoints/`` or a link)."""
    return path.is_dir() and (
        (path / RUN_MARKER).is_file()
        or (path / CHECKPOINTS).is_dir()
        or any((path / link).is_symlink() for link in LINKS)
    )


def checkpoint_of_run(run_dir: Path, *, prefer: Literal["best", "latest"] = "latest") -> Path:
    """The checkpoint folder a run folder stands for, confined to the run folder.

    ``prefer="latest"``: the ``latest`` link, else the newest ``checkpoints/step-*``;
    ``prefer="best"``: the ``best`` link (lowest validation loss) first, then as latest.
    Raises FileNotFoundError when the run has no checkpoint yet, ValueError for a link that
    points outside the run folder.
    """
    check_confined(run_dir)
    order = ("best", "latest") if prefer == "best" else ("latest",)
    for link in order:
        path = run_dir / link
        if path.is_symlink() and path.exists():
            return resolve_inside(run_dir, path, what=f"the {link!r} link of run folder")
    root = run_dir / CHECKPOINTS
    steps = sorted(p for p in root.glob("step-*") if p.is_dir()) if root.is_dir() else []
    if steps:
        return steps[-1].resolve()
    raise FileNotFoundError(
        f"no checkpoint in {run_dir} (expected {run_dir}/latest, {run_dir}/{CHECKPOINTS}/step-* "
        "or a model directory with config.json); train one with `qkv train --out-dir DIR`"
    )


def confined_location(location: Path) -> Path:
    """``location`` with a link that a run folder holds checked: ``out/latest`` (or any
    symlink directly inside a run folder) must point inside that run folder."""
    parent = location.parent
    if location.is_symlink() and (parent / RUN_MARKER).is_file():
        return resolve_inside(parent, location, what=f"the {location.name!r} link of run folder")
    return location
