"""Token shards on disk: written incrementally and atomically, read back through memmaps.

A prepared corpus is a folder ``<cache>/prepared/<key>/`` holding ``shard-00000.bin``, ... (raw
uint16 or uint32 ids, :data:`SHARD_TOKENS` each but the last) and ``manifest.json`` (the
source fingerprint, tokenizer hash, token and document counts, shard sizes). The folder is
filled under a temporary name (``.<key>.<random>.tmp``) and renamed into place whole after the
manifest is written (:func:`qkv.atomic.replace_dir_atomic`): a preparation killed at any point
leaves only a temporary folder, which never loads. Its ``progress.json`` (rewritten after each
batch, once the shards are flushed) records how many chunks are in the shards; the next
preparation with the same ``resume_key`` (the chunking options) adopts the folder, cuts the
shards back to that count and goes on from the next chunk; other leftovers are removed.

:class:`ShardedTokens` presents the shards as one array of N ids: ``len``, and a slice
``tokens[a:b]`` copies only those ids out of the memmaps; ``view(a, b)`` is a window without
copying (the train / validation splits). No process holds the corpus in memory.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from qkv.atomic import read_json, replace_dir_atomic, write_json_atomic

SHARD_TOKENS = 1 << 26  # 64 Mi ids per shard: 128 MiB as uint16
MANIFEST = "manifest.json"
PROGRESS = "progress.json"
FORMAT = 1


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when all ids fit (vocab ≤ 65536), else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.bin"


class ShardWriter:
    """Append ids to shards in a temporary folder beside ``final``; :meth:`commit` writes the
    manifest and moves the folder to ``final``. Use as a context manager: leaving it with an
    exception removes the temporary folder."""

    def __init__(self, final: Path, *, dtype: np.dtype, shard_tokens: int = SHARD_TOKENS,
                 resume_key: str | None = None) -> None:  # fmt: skip
        final.parent.mkdir(parents=True, exist_ok=True)
        self.final = final
        self.dtype = np.dtype(dtype)
        self.shard_tokens = shard_tokens
        self.resume_key = resume_key
        self.sizes: list[int] = []
        self._handle: Any = None
        self.total = 0
        self.resumed_chunks = 0  # chunks already in the adopted shards (0: a fresh start)
        adopted = self._adopt() if resume_key is not None else None
        remove_stale_temporaries(final)
        if adopted is None:
            self.folder = final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp")
            self.folder.mkdir()
            (self.folder / "pid").write_text(str(os.getpid()))

    def _adopt(self) -> Path | None:
        """Take over a killed preparation's folder with this ``resume_key``, if there is one."""
        for tmp in sorted(self.final.parent.glob(f".{self.final.name}.*.tmp")):
            try:
                pid = int((tmp / "pid").read_text())
                progress = read_json(tmp / PROGRESS)
            except (OSError, ValueError):
                continue
            if _pid_alive(pid) or progress.get("resume_key") != self.resume_key:
                continue
            sizes = [int(n) for n in progress["sizes"]]
            if (
                progress.get("shard_tokens") != self.shard_tokens
                or progress.get("dtype") != self.dtype.name
            ):
                continue
            try:  # os.truncate would extend a shorter file with zeros: never resume on one
                if any((tmp / shard_name(i)).stat().st_size < n * self.dtype.itemsize
                       for i, n in enumerate(sizes)):  # fmt: skip
                    continue
                for index, tokens in enumerate(sizes):
                    os.truncate(tmp / shard_name(index), tokens * self.dtype.itemsize)
            except OSError:  # a shard is missing: start afresh
                continue
            for extra in tmp.glob("shard-*.bin"):
                if int(extra.stem.split("-")[1]) >= len(sizes):
                    extra.unlink()
            (tmp / "pid").write_text(str(os.getpid()))
            self.folder, self.sizes, self.total = tmp, sizes, sum(sizes)
            self.resumed_chunks = int(progress["chunks"])
            if sizes:
                self._handle = open(tmp / shard_name(len(sizes) - 1), "ab")  # noqa: SIM115
            return tmp
        return None

    def checkpoint(self, chunks: int) -> None:
        """Record that the shards hold the ids of the first ``chunks`` chunks (flushed first,
        so a killed process leaves at least what it recorded)."""
        if self.resume_key is None:
            return
        if self._handle is not None:
            self._handle.flush()
        progress = {
            "resume_key": self.resume_key, "chunks": chunks, "sizes": self.sizes,
            "shard_tokens": self.shard_tokens, "dtype": self.dtype.name,
        }  # fmt: skip
        # Replaced whole, not fsynced (a batch each): survives a killed process; after a power
        # cut a shard shorter than recorded makes the next run start afresh instead.
        scratch = self.folder / (PROGRESS + ".new")
        scratch.write_text(json.dumps(progress), encoding="utf-8")
        os.replace(scratch, self.folder / PROGRESS)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if kind is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def write(self, ids: np.ndarray) -> None:
        """Append ``ids`` (N,) (any integer dtype; cast to the shard dtype)."""
        ids = np.asarray(ids).astype(self.dtype, copy=False)
        while len(ids):
            if self._handle is None or self.sizes[-1] == self.shard_tokens:
                self._next_shard()
            room = self.shard_tokens - self.sizes[-1]
            part, ids = ids[:room], ids[room:]
            self._handle.write(part.tobytes())
            self.sizes[-1] += len(part)
            self.total += len(part)

    def _next_shard(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle = open(self.folder / shard_name(len(self.sizes)), "wb")  # noqa: SIM115
        self.sizes.append(0)

    def commit(self, manifest: dict[str, Any]) -> Path:
        """Close the last shard, write ``manifest`` (plus format, dtype, shard sizes) and move
        the folder to its final name; returns it."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        (self.folder / "pid").unlink()
        (self.folder / PROGRESS).unlink(missing_ok=True)
        full = {
            **manifest,
            "format": FORMAT,
            "dtype": self.dtype.name,
            "tokens": self.total,
            "shards": [{"file": shard_name(i), "tokens": n} for i, n in enumerate(self.sizes)],
        }
        write_json_atomic(self.folder / MANIFEST, full)
        return replace_dir_atomic(self.folder, self.final)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(final: Path) -> None:
    """Delete temporary folders of ``final`` whose writing process is gone (killed runs)."""
    for tmp in final.parent.glob(f".{final.name}.*.tmp"):
        try:
            pid = int((tmp / "pid").read_text())
        except (OSError, ValueError):
            pid = -1
        if pid < 0 or not _pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a finished shard folder, or None when there is none (not prepared, or
    interrupted) or when a shard file's size disagrees with it (damaged: prepare again)."""
    if not (folder / MANIFEST).is_file():
        return None
    try:
        manifest = read_json(folder / MANIFEST)
    except ValueError:
        return None
    if manifest.get("format") != FORMAT:
        return None
    itemsize = np.dtype(manifest["dtype"]).itemsize
    for shard in manifest["shards"]:
        path = folder / shard["file"]
        if not path.is_file() or path.stat().st_size != shard["tokens"] * itemsize:
            return None
    return manifest


class ShardedTokens:
    """Read-only token ids (N,) spread over memmapped shards, or a window of them."""

    def __init__(self, maps: list[np.ndarray], *, start: int = 0, stop: int | None = None) -> None:
        self._maps = maps
        self._bounds = np.cumsum([0] + [len(m) for m in maps])  # (n_shards + 1,)
        total = int(self._bounds[-1])
        self.start = start
        self.stop = total if stop is None else stop
        if not 0 <= self.start <= self.stop <= total:
            raise ValueError(f"window [{start}, {stop}) is outside the {total} tokens")
        self.dtype = maps[0].dtype if maps else np.dtype(np.uint16)

    @classmethod
    def open(cls, folder: Path, manifest: dict[str, Any]) -> ShardedTokens:
        dtype = np.dtype(manifest["dtype"])
        maps = [
            np.memmap(folder / s["file"], dtype=dtype, mode="r")
            for s in manifest["shards"]
            if s["tokens"] > 0  # np.memmap refuses empty files
        ]
        return cls(maps)

    def __len__(self) -> int:
        return self.stop - self.start

    def view(self, start: int, stop: int) -> ShardedTokens:
        """Tokens ``[start, stop)`` of this window, without copying."""
        return ShardedTokens(self._maps, start=self.start + start, stop=self.start + stop)

    def __getitem__(self, index: slice) -> np.ndarray:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("ShardedTokens supports contiguous slices only, e.g. tokens[a:b]")
        begin, end, _ = index.indices(len(self))
        begin, end = self.start + begin, self.start + max(end, begin)
        parts = []
        shard = int(np.searchsorted(self._bounds, begin, side="right")) - 1
        while begin < end:
            low = int(self._bounds[shard])
            high = min(end, int(self._bounds[shard + 1]))
            parts.append(self._maps[shard][begin - low : high - low])
            begin, shard = high, shard + 1
        if not parts:
            return np.zeros(0, dtype=self.dtype)
        return parts[0].copy() if len(parts) == 1 else np.concatenate(parts)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = self[:]
        return values if dtype is None else values.astype(dtype)

    def tolist(self) -> list[int]:
        return self[:].tolist()
