"""Where a corpus comes from, read as a stream of documents in bounded memory.

``--data`` may name a UTF-8 text file, a folder of ``.txt`` / ``.md`` files (sorted,
recursive), a JSONL file (one document per line, its ``--text-field``), a Parquet file (the
``--text-field`` column, streamed by record batches), a folder written by ``datasets``'
``save_to_disk``, or ``hf:NAME`` (``datasets.load_dataset(NAME, split=--data-split)``, which
honours ``HF_DATASETS_CACHE`` and ``HF_DATASETS_OFFLINE``). Each is a :class:`Source`: a
``fingerprint`` that costs a ``stat`` per file (paths, sizes, modification times: the cache
key of everything derived from it) and ``documents()``, an iterator of documents, each an
iterator of text pieces, so no document is ever held whole.

Every way a source can be unusable is a ``ValueError`` / ``FileNotFoundError`` naming the file
(and the byte offset or line) and the fix.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEXT_SUFFIXES = (".txt", ".md")
READ_BYTES = 1 << 20  # bytes read per call: the reading buffer is this big, whatever the file

Document = Iterator[str]


@dataclass(frozen=True, kw_only=True)
class SourceSpec:
    """What ``--data`` and its options name; see the module docstring for the forms."""

    data: str
    text_field: str = "text"
    split: str = "train"
    skip_bad_files: bool = False

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError(
                "--data is empty; pass a text file, folder, .jsonl, .parquet or hf:NAME"
            )
        if not self.text_field:
            raise ValueError("--text-field is empty; pass the name of the text column, e.g. text")
        if not self.split:
            raise ValueError("--data-split is empty; pass a split name, e.g. train")


@dataclass(kw_only=True)
class Source:
    """A resolved corpus: ``kind`` (text, folder, jsonl, parquet, datasets), its files,
    ``total_bytes`` (for progress; 0 when unknown) and the fingerprint of its content."""

    spec: SourceSpec
    kind: str
    files: tuple[Path, ...]
    total_bytes: int
    fingerprint: dict[str, Any]
    dataset: Any = None
    skipped: list[str] = field(default_factory=list)  # bad files skipped (--skip-bad-files)

    @property
    def joins_with_newline(self) -> bool:
        """Documents of a folder were joined with a newline before end-of-text tokens existed;
        a tokenizer without one keeps that rule (so older runs resume on the same stream)."""
        return self.kind != "text"

    def documents(self, *, read_bytes: int = READ_BYTES) -> Iterator[Document]:
        """Each document as an iterator of text pieces (a piece never splits a character)."""
        self.skipped.clear()
        if self.kind in ("text", "folder"):
            for path in self.files:
                if self.kind == "folder" and self.spec.skip_bad_files:
                    problem = text_file_problem(path, read_bytes=read_bytes)
                    if problem is not None:
                        self.skipped.append(f"{path}: {problem}")
                        continue
                yield read_text_pieces(path, read_bytes=read_bytes)
        elif self.kind == "jsonl":
            yield from _jsonl_documents(self.files[0], self.spec.text_field)
        elif self.kind == "parquet":
            yield from _parquet_documents(self.files[0], self.spec.text_field)
        else:
            yield from _dataset_documents(self.dataset, self.spec)


def text_file_problem(path: Path, *, read_bytes: int = READ_BYTES) -> str | None:
    """Why ``path`` cannot be read as UTF-8 text (with the byte offset), or None when it can."""
    try:
        for _ in read_text_pieces(path, read_bytes=read_bytes):
            pass
    except (ValueError, OSError) as error:
        return str(error).removeprefix(f"corpus file {path} ").split(";")[0]
    return None


def read_text_pieces(path: Path, *, read_bytes: int = READ_BYTES) -> Iterator[str]:
    """The text of ``path`` in pieces of at most ``read_bytes`` bytes, decoded incrementally so
    a multi-byte character cut by a read is completed by the next; a leading BOM is dropped.

    Raises ValueError naming the file and byte offset of the first byte that is not UTF-8,
    or saying it looks binary (a NUL byte in its first MiB).
    """
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    first = True
    # An OSError (permission, I/O) propagates: the CLI describes it in one line.
    handle = open(path, "rb")  # noqa: SIM115 - closed in finally, the generator may stop early
    try:
        while True:
            block = handle.read(read_bytes)
            if offset < (1 << 20) and b"\x00" in block[: (1 << 20) - offset]:
                raise ValueError(
                    f"corpus file {path} looks binary (a NUL byte at byte "
                    f"{offset + block.index(0)}); pass UTF-8 text files with --data, or "
                    "--skip-bad-files"
                )
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(block, final=not block)
            except UnicodeDecodeError as error:
                at = offset - pending + error.start
                raise ValueError(
                    f"corpus file {path} is not valid UTF-8 at byte {at} "
                    f"({error.object[error.start : error.start + 1]!r}); convert it (iconv -f "
                    "latin1 -t utf-8) or pass --skip-bad-files to leave it out"
                ) from None
            offset += len(block)
            if first and text:
                text, first = text.removeprefix("\ufeff"), False
            if text:
                yield text
            if not block:
                return
    finally:
        handle.close()


def _stat(path: Path) -> list[Any]:
    info = path.stat()
    return [str(path), info.st_size, info.st_mtime_ns]


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()


def open_source(spec: SourceSpec) -> Source:
    """Resolve ``spec`` into a :class:`Source` (stats files; opens a dataset lazily)."""
    if spec.data.startswith("hf:"):
        return _hub_source(spec)
    path = Path(spec.data).expanduser().resolve()
    if not path.exists():
        raise FileNotFoundError(
            f"corpus {path} does not exist; pass --data with a text file, a folder of .txt/.md "
            "files, a .jsonl or .parquet file, a saved datasets folder or hf:NAME"
        )
    if path.is_dir() and _is_saved_dataset(path):
        import datasets

        try:
            dataset = datasets.load_from_disk(str(path))
        except Exception as error:  # datasets fails with IndexError on an empty saved split
            raise ValueError(
                f"dataset folder {path} could not be opened by datasets.load_from_disk "
                f"({type(error).__name__}: {str(error)[:200]}); is it empty or damaged? Save it "
                "again with save_to_disk"
            ) from None
        return _dataset_source(spec, dataset, str(path))
    if path.is_dir():
        files = tuple(
            sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
        )
        if not files:
            raise ValueError(
                f"corpus folder {path} holds no .txt or .md files; put UTF-8 text files in it "
                "or pass a file with --data"
            )
        kind = "folder"
    else:
        files = (path,)
        suffix = path.suffix.lower()
        kind = {".jsonl": "jsonl", ".parquet": "parquet"}.get(suffix, "text")
    stats = [_stat(p) for p in files]
    fingerprint = {"kind": kind, "files": stats}
    if kind in ("jsonl", "parquet"):
        fingerprint["text_field"] = spec.text_field
    if kind == "folder":
        fingerprint["skip_bad_files"] = spec.skip_bad_files
    return Source(
        spec=spec,
        kind=kind,
        files=files,
        total_bytes=sum(s[1] for s in stats),
        fingerprint=fingerprint,
    )


def _hub_source(spec: SourceSpec) -> Source:
    import datasets

    name = spec.data.removeprefix("hf:")
    if not name:
        raise ValueError("--data hf: needs a dataset id, e.g. hf:roneneldan/TinyStories")
    try:
        dataset = datasets.load_dataset(name, split=spec.split)  # shows its download progress
    except ValueError as error:  # an unknown split, among others
        raise ValueError(f"dataset {name}: {str(error).splitlines()[0]}") from None
    except ConnectionError as error:  # offline (HF_DATASETS_OFFLINE / HF_HUB_OFFLINE) or no network
        raise ValueError(
            f"dataset {name} is not in the datasets cache and the Hub cannot be reached "
            f"({str(error).splitlines()[0][:160]}); download it once online, or pass a local "
            "folder written by save_to_disk"
        ) from None
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"dataset {name} was not found ({str(error).splitlines()[0][:200]}); check the id, "
            "or with HF_DATASETS_OFFLINE=1 download it once online first"
        ) from None
    return _dataset_source(spec, dataset, spec.data)


def _dataset_source(spec: SourceSpec, dataset: Any, origin: str) -> Source:
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        if spec.split not in dataset:
            raise ValueError(
                f"dataset {origin} has no split {spec.split!r}; pass --data-split with one of: "
                f"{', '.join(dataset.keys())}"
            )
        dataset = dataset[spec.split]
    if spec.text_field not in dataset.column_names:
        raise ValueError(
            f"dataset {origin} has no column {spec.text_field!r}; pass --text-field with one "
            f"of: {', '.join(dataset.column_names)}"
        )
    if len(dataset) == 0:
        raise ValueError(
            f"dataset {origin} split {spec.split!r} is empty; pick another --data-split"
        )
    files = tuple(Path(f["filename"]) for f in dataset.cache_files)
    stats = [_stat(p) for p in files]
    fingerprint = {
        "kind": "datasets",
        "origin": origin,
        "split": spec.split,
        "text_field": spec.text_field,
        "fingerprint": getattr(dataset, "_fingerprint", None),
        "files": stats,
        "rows": len(dataset),
    }
    return Source(
        spec=spec,
        kind="datasets",
        files=files,
        total_bytes=sum(s[1] for s in stats),
        fingerprint=fingerprint,
        dataset=dataset,
    )


def _jsonl_documents(path: Path, text_field: str) -> Iterator[Document]:
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise ValueError(
                    f"{path} line {number} is not JSON ({error}); every line must be a JSON object"
                ) from None
            if not isinstance(record, dict) or text_field not in record:
                keys = ", ".join(record) if isinstance(record, dict) else type(record).__name__
                raise ValueError(
                    f"{path} line {number} lacks the field {text_field!r} (it has: {keys}); "
                    "pass --text-field with the name of the text field"
                )
            text = record[text_field]
            if not isinstance(text, str):
                raise ValueError(
                    f"{path} line {number}: field {text_field!r} is {type(text).__name__}, "
                    "not a string"
                )
            yield iter((text,))


def _parquet_documents(path: Path, text_field: str) -> Iterator[Document]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises its own ArrowInvalid for a damaged file
        raise ValueError(f"{path} is not a readable Parquet file ({error})") from None
    names = table.schema_arrow.names
    if text_field not in names:
        raise ValueError(
            f"{path} has no column {text_field!r}; pass --text-field with one of: "
            f"{', '.join(names)}"
        )
    for batch in table.iter_batches(batch_size=1024, columns=[text_field]):
        for text in batch.column(0).to_pylist():
            if text is not None:
                yield iter((text,))


def _dataset_documents(dataset: Any, spec: SourceSpec) -> Iterator[Document]:
    for batch in dataset.iter(batch_size=1024):
        for text in batch[spec.text_field]:
            if text is not None:
                yield iter((str(text),))


def describe(source: Source) -> str:
    """A short phrase for messages: ``3 files, 1.2 GB``."""
    size = f"{source.total_bytes / 1e9:.2f} GB" if source.total_bytes else "size unknown"
    count = len(source.files)
    return f"{source.kind}, {count} file{'s' if count != 1 else ''}, {size}"
