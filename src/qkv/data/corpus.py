"""Reading a training corpus: one UTF-8 text file, or a folder of ``.txt`` files.

Every way a corpus can be unusable is a ``ValueError`` / ``FileNotFoundError`` naming the
path, what was wrong and the fix, so ``qkv train`` can print it as one line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class Corpus:
    """A corpus read into memory: its text, where it came from, and a hash of the content."""

    text: str
    source: str
    files: tuple[str, ...]

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the UTF-8 text: the cache key of everything derived from it."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def _read_text_file(path: Path) -> str:
    raw = path.read_bytes()
    if b"\x00" in raw[: 1 << 20]:
        raise ValueError(
            f"corpus file {path} looks binary (it contains NUL bytes); "
            "pass a UTF-8 text file or a folder of .txt files with --data"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"corpus file {path} is not valid UTF-8 (byte {error.start}: "
            f"{raw[error.start : error.start + 1]!r}); convert it, e.g. "
            f"`iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8.txt`"
        ) from None
    return text.removeprefix("\ufeff")  # a BOM is not part of the text


def read_corpus(path: str | Path) -> Corpus:
    """Read ``path``: a UTF-8 text file, or a folder whose ``*.txt`` files (sorted, recursive)
    are joined with newlines between files.

    Raises FileNotFoundError for a missing path and ValueError for an empty, binary or
    non-UTF-8 corpus.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"corpus {path} does not exist; pass --data with a UTF-8 text file or a folder of .txt "
            "files"
        )
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise ValueError(
                f"corpus folder {path} holds no .txt files; put UTF-8 .txt files in it or pass "
                "a text file with --data"
            )
        parts = []
        for file in files:
            part = _read_text_file(file)
            parts.append(part if part.endswith("\n") or not part else part + "\n")
        text = "".join(parts)
        names = tuple(str(f) for f in files)
    else:
        text = _read_text_file(path)
        names = (str(path),)
    if not text.strip():
        raise ValueError(
            f"corpus {path} is empty (no text after decoding); pass a non-empty UTF-8 text "
            "with --data"
        )
    return Corpus(text=text, source=str(path), files=names)


def split_point(n_tokens: int, val_fraction: float) -> int:
    """Index where validation starts: the first ``1 - val_fraction`` of tokens train."""
    return int(n_tokens * (1.0 - val_fraction))
