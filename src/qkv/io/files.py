"""Reading and writing weight files safely: atomic writes, and reads that turn a truncated or
corrupt ``model.safetensors`` / ``pytorch_model.bin`` into a ValueError naming the file (and
the tensor, where one is to blame) instead of a crash deep inside a parser.

The safetensors layout checked here: 8 bytes little-endian header length N, N bytes of JSON
header ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``,
then the data section whose size must equal the largest ``end``.
"""

from __future__ import annotations

import errno
import json
import os
import re
import struct
from pathlib import Path

import torch
from torch import Tensor

# Atomic writes and JSON reads live in the layer-neutral qkv.atomic (tokenizers in qkv.data
# use them too); re-exported so ``qkv.io.files`` keeps offering them.
from qkv.atomic import atomic_path, read_json, write_atomic, write_json_atomic

__all__ = [
    "atomic_path",
    "check_safetensors",
    "describe_os_error",
    "read_json",
    "read_weights",
    "save_safetensors",
    "write_atomic",
    "write_json_atomic",
]

# Bytes per element for each safetensors dtype name.
_DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
    "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8,
}  # fmt: skip


def save_safetensors(
    tensors: dict[str, Tensor], path: str | os.PathLike[str], metadata: dict[str, str] | None = None
) -> None:
    """Write ``tensors`` to a safetensors file atomically (each tensor made contiguous)."""
    from safetensors.torch import save_file

    flat = {name: t.detach().contiguous().cpu() for name, t in tensors.items()}

    def write(tmp: Path) -> None:
        try:
            save_file(flat, str(tmp), metadata=metadata)
        except Exception as error:  # safetensors' Rust I/O errors carry the OS error number
            raise _os_error_of(error, path) from None

    write_atomic(path, write)


def _os_error_of(error: Exception, path: str | os.PathLike[str]) -> Exception:
    """The OSError behind a safetensors write failure ("... (os error 28)"), else ``error``."""
    found = re.search(r"\(os error (\d+)\)", str(error))
    if found is None:
        return error
    number = int(found.group(1))
    return OSError(number, os.strerror(number), str(path))


# errno -> (what happened, how to fix it), for the one-line CLI message of an OSError.
_OS_FAULTS = {
    errno.ENOSPC: ("disk full", "free space on that disk or write somewhere else"),
    errno.EDQUOT: ("disk quota exceeded", "free space or write somewhere else"),
    errno.EROFS: ("read-only file system", "write somewhere writable"),
    errno.EACCES: ("permission denied", "check the permissions or use another path"),
    errno.EPERM: ("operation not permitted", "check the permissions or use another path"),
    errno.ELOOP: ("symlink loop", "point the path at a real file or folder"),
    errno.EIO: ("I/O error", "the disk or network file system failed; check it and retry"),
    errno.EFBIG: ("file too large for its file system", "write somewhere else"),
    errno.ENAMETOOLONG: ("file name too long", "use a shorter path"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) or close programs"),
    errno.ENODEV: ("no such device", "check the path's device"),
}


def describe_os_error(error: OSError) -> str:
    """One line for an OSError: what happened (errno name), where, and the fix; a message
    that adds context to the OS's own (``OSError(ENOSPC, "... while writing ...")``) keeps
    that context."""
    number = error.errno
    name = errno.errorcode.get(number, "") if number is not None else ""
    where = f" at {error.filename}" if error.filename else ""
    if error.filename2:
        where += f" -> {error.filename2}"
    text = error.strerror or str(error)
    own = os.strerror(number) if number is not None else ""
    label, fix = _OS_FAULTS.get(number, (own or "OS error", ""))
    detail = text if text != own else fix
    code = f" ({name})" if name else ""
    return f"{label}{code}{where}: {detail}" if detail else f"{label}{code}{where}"


def check_safetensors(path: Path) -> dict[str, dict]:
    """Validate the header and size of a safetensors file; return its tensor entries.

    Raises ValueError naming ``path`` (and the first tensor whose bytes are missing) when the
    file is truncated or its header is corrupt.
    """
    size = path.stat().st_size
    with open(path, "rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            raise ValueError(
                f"{path} is truncated: {size} bytes, too short for a safetensors header; "
                "re-save or re-download the weights"
            )
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > size - 8:
            raise ValueError(
                f"{path} is truncated or not a safetensors file: header says {header_len} "
                f"header bytes but the file has {size} bytes; re-save or re-download the weights"
            )
        try:
            header = json.loads(file.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(
                f"{path} has a corrupt safetensors header (not JSON); "
                "re-save or re-download the weights"
            ) from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} has a corrupt safetensors header (not a JSON object)")
    header.pop("__metadata__", None)
    data_size = size - 8 - header_len
    for name, entry in sorted(header.items(), key=lambda item: _end(item[1])):
        try:
            begin, end = (int(offset) for offset in entry["data_offsets"])
            count = 1
            for dim in entry["shape"]:
                count *= int(dim)
            width = _DTYPE_BYTES.get(entry["dtype"])  # exotic dtypes: size check skipped
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"{path}: corrupt safetensors header entry for tensor {name!r}: {entry!r}"
            ) from None
        nbytes = end - begin if width is None else count * width
        if end - begin != nbytes or begin > end:
            raise ValueError(
                f"{path}: tensor {name!r} of shape {entry['shape']} ({entry['dtype']}) needs "
                f"{nbytes} bytes but its header gives {end - begin}; the file is corrupt"
            )
        if end > data_size:
            raise ValueError(
                f"{path} is truncated: tensor {name!r} needs bytes {begin}..{end} of the data "
                f"section but only {data_size} are present; re-save or re-download the weights"
            )
    return header


def _end(entry: object) -> int:
    try:
        return int(entry["data_offsets"][1])  # type: ignore[index]
    except (KeyError, TypeError, ValueError, IndexError):
        return -1


def read_weights(path: Path) -> dict[str, Tensor]:
    """Read every tensor of a ``.safetensors`` or ``.bin`` (torch zip) file, validated.

    Raises FileNotFoundError when ``path`` is missing and ValueError naming the file when it is
    truncated or corrupt.
    """
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} not found")
    if path.suffix == ".safetensors":
        check_safetensors(path)
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as error:  # safetensors raises its own SafetensorError
            raise ValueError(f"{path} could not be read as safetensors: {error}") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # zip/pickle errors come in many types
        raise ValueError(
            f"{path} could not be read as a PyTorch weights file ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); it is truncated or corrupt, "
            "re-save or re-download it"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(t, Tensor) for t in state.values()):
        raise ValueError(f"{path} does not hold a dict of tensors (a state dict)")
    return dict(state)
