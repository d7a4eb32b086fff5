"""Integrity of a checkpoint folder: the SHA-256 of every file, checked against its manifest.

A training checkpoint holds ``checkpoint.json`` (written last) with ``{"files": {name:
sha256}}``; :func:`verify_files` recomputes the hashes of the files a reader is about to use
and raises :class:`IntegrityError` naming the first one that changed. A folder without a
manifest (a Hugging Face download, a plain ``qkv.save``) has nothing to check against and is
read as before.

The fast paths: ``qkv.load`` hashes in a background thread while it parses the files
(:func:`verified_while_reading`; SHA-256 runs at OpenSSL speed, about 1.3 GB/s on one idle
EPYC core, and releases the GIL), and a file this process has already hashed is not hashed
again while its identity and change times are unchanged: the cache key is (device, inode,
size, mtime_ns, ctime_ns). Rewriting a file, even in place and with its mtime forged back,
moves its ctime (which only the kernel sets), so a remembered hash is never reused for
changed bytes; resume checks the same checkpoint twice (plan, then read) and pays for one
hash. ``benchmarks/integrity.py`` measures both.

Names in a manifest are plain file names inside the folder: ``../x``, an absolute path or a
file that is a symlink to somewhere outside the folder is refused, never followed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

MANIFEST = "checkpoint.json"
_CHUNK = 1 << 20

# (resolved path) -> ((st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns), sha256 hex)
_HASHED: dict[str, tuple[tuple[int, int, int, int, int], str]] = {}
_HASHED_LOCK = threading.Lock()


class IntegrityError(ValueError):
    """A file of a checkpoint differs from its manifest (or the manifest itself is unusable)."""


def _identity(stat: os.stat_result) -> tuple[int, int, int, int, int]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of the file at ``path``; reused while the file's (device, inode, size,
    mtime_ns, ctime_ns) are those it had when this process last hashed it."""
    resolved = str(Path(path).resolve())
    with open(resolved, "rb") as handle:
        before = _identity(os.fstat(handle.fileno()))
        with _HASHED_LOCK:
            cached = _HASHED.get(resolved)
        if cached is not None and cached[0] == before:
            return cached[1]
        digest = hashlib.sha256()
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
        after = _identity(os.fstat(handle.fileno()))
    hexdigest = digest.hexdigest()
    if after == before:  # not written to while it was read: safe to remember
        with _HASHED_LOCK:
            _HASHED[resolved] = (after, hexdigest)
    return hexdigest


def forget_hashes() -> None:
    """Drop every remembered hash (the next check re-reads each file)."""
    with _HASHED_LOCK:
        _HASHED.clear()


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of checkpoint ``directory``, or None when it has none.

    Raises IntegrityError when ``checkpoint.json`` exists but is not a manifest: not JSON, or
    without a ``files`` object of name -> 64-hex-digit SHA-256.
    """
    path = directory / MANIFEST
    if not path.exists() and not path.is_symlink():
        return None
    _inside(directory, MANIFEST)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise IntegrityError(
            f"{path} is corrupt (not JSON); the checkpoint cannot be checked: use another "
            "checkpoint of the run, or delete checkpoint.json to load the folder unchecked"
        ) from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(name, str) and _is_hex_digest(digest) for name, digest in files.items()
    ):
        raise IntegrityError(
            f'{path} is not a checkpoint manifest (expected "files": {{name: sha256}}); use '
            "another checkpoint, or delete checkpoint.json to load the folder unchecked"
        )
    for name in files:
        _inside(directory, name)
    return manifest


def verify_files(
    directory: Path, names: Iterable[str] | None = None, *, manifest: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """Check the SHA-256 of the files ``names`` of ``directory`` (default: every file its
    manifest lists) against the manifest; return the manifest (None: the folder has none, and
    nothing is checked).

    A name in ``names`` that exists in the folder but is missing from the manifest is refused
    too (a manifest is written with every file of the checkpoint). Raises IntegrityError
    naming the file that changed or is missing.
    """
    manifest = manifest if manifest is not None else read_manifest(directory)
    if manifest is None:
        return None
    listed: dict[str, str] = manifest["files"]
    wanted = list(listed) if names is None else [n for n in names if (directory / n).exists()]
    for name in wanted:
        if name not in listed:
            raise IntegrityError(
                f"{directory / name} is not listed in {directory / MANIFEST}, which lists every "
                "file a checkpoint is written with; the folder was altered after it was saved"
            )
        file = directory / name
        if not file.is_file():
            raise IntegrityError(
                f"checkpoint {directory} is missing {name} (listed in {MANIFEST}); use another "
                "checkpoint of the run"
            )
        if sha256_file(file) != listed[name]:
            raise IntegrityError(
                f"{file} changed since the checkpoint was written (SHA-256 differs from "
                f"{MANIFEST}): it is corrupt or was edited; use another checkpoint of the run"
            )
    return manifest


@contextlib.contextmanager
def verified_while_reading(directory: Path, names: Iterable[str]) -> Iterator[None]:
    """Check ``names`` against the manifest of ``directory`` (as :func:`verify_files`) in a
    background thread while the ``with`` block reads them, and raise at its end if a file
    changed: the hashing (which releases the GIL) overlaps the parsing instead of adding to
    it. The block must only read data (safetensors, JSON): what it builds is discarded when
    the check fails. When the block itself fails, a failed check is the error raised (a
    corrupt file explains a failed read). The manifest's structure is checked up front.
    """
    manifest = read_manifest(directory)
    if manifest is None:
        yield
        return
    failure: list[BaseException] = []

    def check() -> None:
        try:
            verify_files(directory, list(names), manifest=manifest)
        except BaseException as error:  # handed to the reading thread
            failure.append(error)

    thread = threading.Thread(target=check, name="qkv-verify", daemon=True)
    thread.start()
    try:
        yield
    except Exception:
        thread.join()
        if failure:
            raise failure[0] from None
        raise
    thread.join()
    if failure:
        raise failure[0]


def hash_files(directory: Path) -> dict[str, str]:
    """{name: sha256} of every regular file in ``directory`` (the manifest's ``files``)."""
    return {p.name: sha256_file(p) for p in sorted(directory.iterdir()) if p.is_file()}


def _inside(directory: Path, name: str) -> Path:
    """``directory / name`` for a plain file name that stays inside ``directory``."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise IntegrityError(
            f"{directory / MANIFEST} names {name!r}, which is not a file name inside the "
            "checkpoint folder; refusing it (a manifest lists only the folder's own files)"
        )
    path = directory / name
    if path.is_symlink():
        try:
            target = path.resolve(strict=False)
        except RuntimeError:  # a symlink loop
            target = None
        if target is None or not target.is_relative_to(directory.resolve()):
            raise IntegrityError(
                f"{path} is a symlink to {os.readlink(path)!r}, outside the checkpoint folder; "
                "refusing to read it (a checkpoint holds its own files)"
            )
    return path


def _is_hex_digest(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) == 64
        and all(c in "0123456789abcdef" for c in value.lower())
    )
