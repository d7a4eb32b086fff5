"""One trainer per run folder: ``train.lock``, held with ``fcntl.flock`` while a run trains.

The lock file holds ``{"pid", "host", "started", "command"}`` of its holder; the lock itself
is the kernel's ``flock`` on the open file, which the kernel drops when the process ends in
any way (exit, crash, ``kill -9``). So:

* a second trainer on the folder (``--resume`` or ``--overwrite`` alike) fails to take the
  lock and is refused, naming the first one's pid, host and start time;
* a lock file whose holder died (non-empty content, but the lock is free) is stale: it is
  taken over and the takeover is reported;
* a trainer that finishes empties the file before unlocking, so the next run starts quietly.

The file is never deleted or replaced while in use: another process may hold it open, and a
new inode would give two processes "the" lock. Under torchrun only rank 0 takes it. On
network filesystems ``flock`` is as reliable as the server's lock support (NFSv4: yes).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qkv.io.run_folder import LOCK_FILE


class RunFolderInUse(ValueError):
    """Another live process trains in the run folder."""


@dataclass
class RunLock:
    """The held lock of one run folder (release it, or let the process end)."""

    path: Path
    fd: int | None

    def release(self) -> None:
        """Empty the lock file (a clean finish leaves no stale holder) and unlock."""
        if self.fd is None:
            return
        import fcntl

        with contextlib.suppress(OSError):  # a disk fault must not hide the run's outcome
            os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def read_holder(path: Path) -> dict[str, Any] | None:
    """The holder recorded in lock file ``path`` (None when empty, missing or unreadable)."""
    try:
        text = path.read_text(encoding="utf-8")
        holder = json.loads(text) if text.strip() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return holder if isinstance(holder, dict) else None


def describe(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "another process (it has not recorded its pid yet)"
    return (
        f"pid {holder.get('pid')} on host {holder.get('host')} (since {holder.get('started')}: "
        f"{holder.get('command') or 'qkv train'})"
    )


def acquire(run_dir: Path, *, say: Callable[[str], None] = lambda message: None) -> RunLock:
    """Lock ``run_dir`` (created if missing) for this process.

    Raises RunFolderInUse naming the live holder; reports a stale lock it took over through
    ``say``. Where ``fcntl`` does not exist (Windows) no lock is taken.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return RunLock(path=run_dir / LOCK_FILE, fd=None)
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"--out-dir {run_dir} is a file; choose a directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    if path.is_symlink():
        raise ValueError(
            f"{path} is a symlink; a run folder's lock file must be its own: delete it"
        )
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunFolderInUse(
            f"run folder {run_dir} is in use: {describe(read_holder(path))} is training in it; "
            "wait for it to finish or stop it, or pick another --out-dir"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    stale = read_holder(path)
    if stale is not None:
        say(f"took over the stale lock of {run_dir}: {describe(stale)} ended without releasing it")
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200] if sys.argv else "",
    }
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode("utf-8"), 0)
        os.fsync(fd)
    except BaseException:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        raise
    return RunLock(path=path, fd=fd)


def ensure_unlocked(run_dir: Path) -> None:
    """Raise RunFolderInUse when a live process holds ``run_dir``'s lock (a probe: the lock
    is taken and released at once, and the file is not created)."""
    path = run_dir / LOCK_FILE
    if not path.is_file():
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RunFolderInUse(
            f"run folder {run_dir} is in use: {describe(read_holder(path))} is training in it; "
            "wait for it to finish or stop it, or pick another --out-dir"
        ) from None
    finally:
        os.close(fd)


@contextlib.contextmanager
def held(
    run_dir: Path, *, enabled: bool = True, say: Callable[[str], None] = lambda message: None
) -> Iterator[RunLock | None]:
    """:func:`acquire` for the duration of a ``with`` block (nothing when not ``enabled``)."""
    lock = acquire(run_dir, say=say) if enabled else None
    try:
        yield lock
    finally:
        if lock is not None:
            lock.release()
