"""Atomic writes: a file or folder appears whole under its final name, or not at all.

The one recipe every layer uses (weights, tokenizers, token caches, checkpoints, metrics, HTML
views): write under a temporary name in the same folder, fsync it, rename it over the target,
fsync the folder. A crash or an exception at any point leaves the previous file (or nothing),
never half of one; a stale temporary (``.<name>.<random>.tmp``) is all a power cut can leave.

This module imports nothing from qkv, so any layer may use it. Example::

    >>> from qkv.atomic import atomic_file, write_text_atomic
    >>> write_text_atomic("out/notes.txt", "hello\\n")
    >>> with atomic_file("out/model.safetensors") as tmp:
    ...     save_file(tensors, str(tmp))        # anything that writes to a path
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

PathLike = str | os.PathLike[str]


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def fsync_file(path: PathLike) -> None:
    """Flush ``path``'s data to disk (a no-op where the platform cannot)."""
    _fsync(Path(path))


def fsync_dir(directory: PathLike) -> None:
    """Flush ``directory``'s entries to disk, so a rename inside it survives a power cut."""
    _fsync(Path(directory))


def _new_temp_file(target: Path) -> Path:
    # os.open with 0o666 applies the umask as a normal open() does; mkstemp's fixed 0600 would
    # hide results (caches, weights, HTML views) from other users of a shared folder.
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:  # pragma: no cover - 1 in 2**32
            continue


@contextlib.contextmanager
def atomic_file(path: PathLike) -> Iterator[Path]:
    """Yield an empty temporary file beside ``path``; when the block ends without an error,
    fsync it, rename it over ``path`` and fsync the folder.

    The parent folder is created if missing. On an exception the temporary is removed and
    ``path`` is left as it was. Example::

        >>> with atomic_file("weights.safetensors") as tmp:
        ...     save_file(tensors, str(tmp))
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp_file(target)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        if error.filename is None and error.errno is not None:  # name the file being written
            raise type(error)(error.errno, error.strerror, str(target)) from error
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(target.parent)


atomic_path = atomic_file  # the name qkv.io.files used


def write_atomic(path: PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically; return the path."""
    with atomic_file(path) as tmp:
        write(tmp)
    return Path(path)


def write_bytes_atomic(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`); return the path."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_file`); return the path."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def write_json_atomic(path: PathLike, data: object) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically; return the path."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: PathLike) -> dict:
    """Read a JSON object from ``path`` (the reading half of :func:`write_json_atomic`); a
    missing or invalid file raises naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); the file is corrupt") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def replace_dir_atomic(filled: PathLike, target: PathLike) -> Path:
    """Move the finished folder ``filled`` to ``target`` (a sibling name), durably.

    Every file in ``filled`` and the folder itself are fsynced first, so ``target`` never
    names a folder whose contents a power cut could lose. An existing ``target`` is first
    renamed aside to ``<filled>.old`` (beside ``filled``, so the caller's clean-up of stale
    temporaries also finds it after a crash) and deleted only once ``target`` is in place.
    Returns ``target``. Example::

        >>> tmp = root / ".tmp-step-10"; tmp.mkdir(); ...   # write the files
        >>> replace_dir_atomic(tmp, root / "step-10")
    """
    source, final = Path(filled), Path(target)
    for entry in source.iterdir():
        if entry.is_file():
            _fsync(entry)
    _fsync(source)
    aside = source.with_name(source.name + ".old")
    moved_aside = final.exists()
    if moved_aside:  # os.rename cannot replace a non-empty folder
        shutil.rmtree(aside, ignore_errors=True)
        os.rename(final, aside)
    try:
        os.rename(source, final)
    except BaseException:
        if moved_aside:
            os.rename(aside, final)
        raise
    _fsync(final.parent)
    shutil.rmtree(aside, ignore_errors=True)
    return final


def symlink_atomic(link: PathLike, target: PathLike) -> None:
    """Point ``link`` at ``target`` (stored relative to the link's folder), swapping an existing
    link in one rename, so readers see the old target or the new one, never no link."""
    link_path = Path(link)
    tmp = link_path.with_name(f".{link_path.name}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(target, link_path.parent), tmp)
    os.replace(tmp, link_path)
    _fsync(link_path.parent)
