"""Checks the subcommands run on their flags before doing any work, each failing as a
:class:`~qkv.cli.main.CliError` (one line, exit code 2) that names the flag and the fix:
a device that does not exist here, an input path that is a symlink loop or unreadable, and
sizes that cannot be allocated (refused from arithmetic, with the memory they would need).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from qkv.cli.main import CliError


def device(value: str, flag: str = "--device") -> str:
    """``value`` when it names a device this machine has (``cpu``, ``cuda``, ``cuda:N``)."""
    import torch

    try:
        parsed = torch.device(value)
    except (RuntimeError, ValueError):
        raise CliError(f"{flag} {value!r} is not a device; use cpu or cuda[:N]") from None
    if parsed.type == "cpu":
        return value
    if parsed.type != "cuda":
        raise CliError(f"{flag} {value!r}: qkv runs on cpu or cuda[:N], not {parsed.type}")
    if not torch.cuda.is_available():
        raise CliError(
            f"{flag} {value} asked for CUDA, but this machine has no usable CUDA device (torch "
            f"{torch.__version__}, built {'with' if torch.version.cuda else 'without'} CUDA); "
            "use --device cpu"
        )
    count = torch.cuda.device_count()
    if parsed.index is not None and parsed.index >= count:
        raise CliError(
            f"{flag} {value}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
        )
    return value


def input_path(value: str, flag: str) -> Path:
    """``value`` as an absolute path, refusing a symlink loop (which ``Path.resolve`` would
    raise as RuntimeError) and a path that exists but cannot be read."""
    path = Path(value).expanduser()
    try:
        resolved = path.resolve(strict=False)
    except RuntimeError:
        raise CliError(
            f"{flag} {value}: a symlink loop (the link points back at itself through "
            f"{os.readlink(path) if path.is_symlink() else 'its folders'}); point it at a file"
        ) from None
    try:
        os.stat(resolved)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise CliError(f"{flag} {value}: a symlink loop; point it at a real file") from None
        if error.errno in (errno.EACCES, errno.EPERM):
            raise CliError(f"{flag} {value}: permission denied; make it readable") from None
        return resolved  # a missing path is reported by the command with its own fix
    if not os.access(resolved, os.R_OK):
        raise CliError(f"{flag} {value}: permission denied; make it readable")
    return resolved


def generation_fits_memory(max_new_tokens: int) -> None:
    """Refuse ``--max-new-tokens`` that the command cannot hold: it keeps every generated
    token (two list slots of 8 bytes) and its text (1+ byte), at least 17 bytes a token."""
    from qkv.training.limits import format_bytes, host_memory_bytes

    need = 17 * max_new_tokens
    have = host_memory_bytes()
    if need > have:
        most = have // 17
        raise CliError(
            f"--max-new-tokens {max_new_tokens:,} needs at least {format_bytes(need)} to hold "
            f"the tokens and text it produces; this machine has {format_bytes(have)}; pass "
            f"--max-new-tokens {most:,} or fewer"
        )


def eval_fits_memory(
    n_tokens: int, *, block_size: int, batch_size: int, vocab_size: int, device: str
) -> None:
    """Refuse an ``eval --batch-size`` whose batch of logits cannot be allocated: a batch of
    min(batch, windows) windows needs 4 bytes per logit plus the int64 inputs and targets."""
    import torch

    from qkv.training.limits import device_memory_bytes, format_bytes

    windows = max(-(-max(n_tokens - 1, 1) // block_size), 1)
    rows = min(batch_size, windows)
    need = rows * block_size * (4 * vocab_size + 16)
    have, where = device_memory_bytes(torch.device(device))
    if need > have:
        most = max(have // (block_size * (4 * vocab_size + 16)), 1)
        raise CliError(
            f"--batch-size {batch_size:,} needs at least {format_bytes(need)} for one batch of "
            f"{rows:,} windows x {block_size} tokens x {vocab_size:,} logits; {where}; pass "
            f"--batch-size {most:,} or fewer"
        )
