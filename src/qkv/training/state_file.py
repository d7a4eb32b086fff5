"""``train_state.pt``: a checkpoint's optimizer, RNG and data-order state, stored as data.

A pickle can run code when it is loaded, and run folders are downloaded and shared, so this
file is read with ``torch.load(weights_only=True)``: PyTorch's restricted unpickler, which
builds tensors, numbers, strings, lists, tuples and dicts and refuses any other global. Every
value qkv writes is one of those (format version 2)::

    {"format": "qkv-train-state", "format_version": 2,
     "optimizer": <optimizer.state_dict(): tensors, numbers, strings>,
     "optimizer_format": "torch" | "full-by-name",
     "sampler": {"generator": uint8 tensor},
     "rng": {"torch": uint8 tensor, "cuda": [uint8 tensor, ...] (when CUDA was used),
             "python": {"version": int, "internal": int64 tensor (625,), "gauss_next": float|None},
             "numpy": {"algorithm": "MT19937", "keys": int64 tensor (624,), "pos": int,
                       "has_gauss": int, "cached_gaussian": float}},
     "step": int, "corpus_sha256": str}

Version 1 files (qkv before 2026-12) held numpy's ``get_state()`` tuple, whose array needs
numpy's array-rebuilding globals. They are migrated on read: loaded with exactly those numpy
globals allow-listed (they rebuild a plain array; nothing else is callable) and converted to
version 2 in memory; the next checkpoint is written as version 2. A file needing any other
global is refused with a one-line reason.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE = "train_state.pt"
FORMAT = "qkv-train-state"
FORMAT_VERSION = 2


def rng_state() -> dict[str, Any]:
    """Every global RNG state (torch CPU and CUDA, python ``random``, numpy) as tensors and
    plain values (see the module docstring)."""
    version, internal, gauss_next = random.getstate()
    algorithm, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),  # (625,)
            "gauss_next": gauss_next,
        },
        "numpy": {
            "algorithm": str(algorithm),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),  # (624,)
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    python = state["python"]
    internal = tuple(int(x) for x in python["internal"].tolist())
    random.setstate((python["version"], internal, python["gauss_next"]))
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["algorithm"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["pos"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def tagged(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with the format tag and version this module reads."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, **state}


def save_train_state(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` of ``state`` to ``path``; a failed write raises the OSError behind it.

    PyTorch's zip writer turns a short write (disk full, quota) into ``RuntimeError:
    unexpected pos ...``; writing through a file object that keeps the real error lets the
    CLI say "disk full" instead.
    """
    try:
        with open(path, "wb") as handle:
            recorder = _ErrorKeepingWriter(handle)
            try:
                torch.save(state, recorder)
            except RuntimeError:
                if recorder.error is None:
                    raise
                raise recorder.error from None
    except OSError as error:
        if error.filename is None and error.errno is not None:
            raise type(error)(error.errno, error.strerror, str(path)) from None
        raise


class _ErrorKeepingWriter:
    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.handle.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.handle.flush()


def _numpy_array_globals() -> list[Any]:
    """The globals a pickled plain numpy array needs (numpy 1.x and 2.x spellings)."""
    try:
        from numpy._core import multiarray  # numpy 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray

    found: list[Any] = [np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    found.append((multiarray._reconstruct, "numpy.core.multiarray._reconstruct"))
    found.append((multiarray._reconstruct, "numpy._core.multiarray._reconstruct"))
    return found


def load_train_state(path: Path) -> dict[str, Any]:
    """The state in ``path``, read as data only (format version 2, or 1 migrated).

    Raises ValueError with a one-line reason for a file that is unreadable, needs globals
    other than a plain numpy array's, or comes from a newer qkv.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        state = _load_version_1(path, error)
    if not isinstance(state, dict) or not {"optimizer", "sampler", "rng", "step"} <= set(state):
        raise ValueError(
            f"{path} is not a qkv training state (expected optimizer, sampler, rng and step); "
            "resume from another checkpoint"
        )
    version = state.get("format_version", 1)
    if state.get("format", FORMAT) != FORMAT or not isinstance(version, int):
        raise ValueError(f"{path} is not a qkv training state; resume from another checkpoint")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has train-state format_version {version}, newer than this qkv reads "
            f"({FORMAT_VERSION}); upgrade qkv to resume this run"
        )
    if version == 1:
        state = _migrate_version_1(state, path)
    return state


def _load_version_1(path: Path, first_error: Exception) -> dict[str, Any]:
    import pickle

    if not isinstance(first_error, pickle.UnpicklingError):
        raise ValueError(
            f"{path} could not be read ({type(first_error).__name__}); it is truncated or "
            "corrupt: resume from another checkpoint"
        ) from None
    try:
        needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:
        needed = {"(unreadable)"}
    allowed = {
        "numpy.ndarray", "numpy.dtype", "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct", "numpy.dtypes.UInt32DType",
    }  # fmt: skip
    if not needed <= allowed:
        names = ", ".join(sorted(needed - allowed))
        raise ValueError(
            f"{path} refers to code ({names}), which a qkv training state never holds; it was "
            "not loaded (it may be crafted to run code): resume from another checkpoint"
        )
    try:
        with torch.serialization.safe_globals(_numpy_array_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"{path} could not be read as a qkv training state ({type(error).__name__}); "
            "resume from another checkpoint"
        ) from None


def _migrate_version_1(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """Version 1 kept ``random.getstate()`` and ``np.random.get_state()`` tuples."""
    rng = dict(state["rng"])
    try:
        version, internal, gauss_next = rng["python"]
        algorithm, keys, pos, has_gauss, cached_gaussian = rng["numpy"]
        rng["python"] = {
            "version": int(version),
            "internal": torch.tensor(list(internal), dtype=torch.int64),
            "gauss_next": gauss_next,
        }
        rng["numpy"] = {
            "algorithm": str(algorithm),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        }
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"{path} holds RNG states in an unknown layout; resume from another checkpoint"
        ) from None
    return {**state, "rng": rng, "format": FORMAT, "format_version": FORMAT_VERSION}
