"""A real full disk and a real read-only disk: small tmpfs mounts (root only; skipped with the
reason elsewhere). Training, the PNG and the viewer each end in one line ``qkv: error: disk
full`` (or ``read-only``) with exit code 2, and nothing already saved is lost."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fault_helpers import TINY_FLAGS, one_line_error, qkv_process, write_corpus
from qkv.training.checkpoint import verify_checkpoint


def _mount(target: Path, options: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command on this machine")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
                            capture_output=True, text=True)  # fmt: skip
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or 'not root'}); "
                    "test_faults.py simulates the full disk instead")  # fmt: skip


def _unmount(target: Path) -> None:
    subprocess.run(["umount", str(target)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs."""
    disk = tmp_path / "disk"
    _mount(disk, "size=2m")
    yield disk
    _unmount(disk)


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "ro"
    _mount(disk, "size=1m,ro")
    yield disk
    _unmount(disk)


def _fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` until about ``leave`` bytes are free."""
    free = shutil.disk_usage(disk).free
    (disk / "ballast").write_bytes(b"\0" * max(free - leave, 0))


def test_training_onto_a_disk_that_fills_up(small_disk: Path, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path)
    run = small_disk / "run"
    _fill(small_disk, 330_000)  # room for the first checkpoint (~230 kB), not the second too
    result = qkv_process(
        "train", *TINY_FLAGS, "--quiet", "--data", str(corpus), "--out-dir", str(run),
        "--max-iters", "6", "--eval-interval", "3", "--keep-last", "5",
        cache=tmp_path / "cache",
    )  # fmt: skip
    one_line_error(result.stderr, result.returncode, "disk full (ENOSPC)")
    assert "unexpected pos" not in result.stderr
    assert verify_checkpoint((run / "latest").resolve())["step"] == 3  # the last one is intact
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp")]


def test_the_png_and_the_viewer_onto_a_full_disk(small_disk: Path, tmp_path: Path) -> None:
    _fill(small_disk, 8_000)
    for name in ("grid.png", "view.html"):
        result = qkv_process("show", "The cat sat on the mat.", "--out", str(small_disk / name),
                             cache=tmp_path / "cache")  # fmt: skip
        one_line_error(result.stderr, result.returncode, "disk full (ENOSPC)", name)
        assert sorted(p.name for p in small_disk.iterdir()) == ["ballast"]  # no partial file


def test_writing_to_a_read_only_disk(read_only_disk: Path, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path)
    result = qkv_process("train", *TINY_FLAGS, "--data", str(corpus), "--out-dir",
                         str(read_only_disk / "run"), cache=tmp_path / "cache")  # fmt: skip
    one_line_error(result.stderr, result.returncode, "read-only file system (EROFS)")
    result = qkv_process("show", "The cat sat.", "--out", str(read_only_disk / "x.png"),
                         cache=tmp_path / "cache")  # fmt: skip
    one_line_error(result.stderr, result.returncode, "read-only file system (EROFS)")
