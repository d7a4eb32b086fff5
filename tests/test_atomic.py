"""qkv.atomic: a target is replaced whole or left as it was; temporaries never stay behind."""

import os
import stat
from pathlib import Path

import pytest

from qkv import atomic


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_file_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.bin"
    atomic.write_bytes_atomic(target, b"old")  # creates the missing folder
    with pytest.raises(RuntimeError), atomic.atomic_file(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert _names(target.parent) == ["file.bin"]  # the temporary is gone
    with atomic.atomic_file(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".file.bin.")
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and _names(target.parent) == ["file.bin"]


def test_text_and_permissions_follow_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        path = atomic.write_text_atomic(tmp_path / "a.txt", "héllo\n")
    finally:
        os.umask(previous)
    assert path.read_text(encoding="utf-8") == "héllo\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600


def test_replace_dir_atomic_moves_a_folder_over_an_existing_one(tmp_path: Path) -> None:
    final = tmp_path / "step-1"
    for content in ("first", "second"):
        filled = tmp_path / ".tmp-step-1"
        filled.mkdir()
        (filled / "weights").write_text(content)
        assert atomic.replace_dir_atomic(filled, final) == final
        assert (final / "weights").read_text() == content
        assert _names(tmp_path) == ["step-1"]  # no temporary or set-aside copy left


def test_replace_dir_atomic_restores_the_old_folder_when_the_move_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    final, filled = tmp_path / "step-1", tmp_path / ".tmp-step-1"
    final.mkdir()
    (final / "weights").write_text("old")
    filled.mkdir()
    (filled / "weights").write_text("new")
    real_rename = os.rename

    def fail_on_the_new_folder(src: object, dst: object) -> None:
        if Path(src) == filled:
            raise OSError("disk gone")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", fail_on_the_new_folder)
    with pytest.raises(OSError, match="disk gone"):
        atomic.replace_dir_atomic(filled, final)
    assert (final / "weights").read_text() == "old"


def test_symlink_atomic_swaps_a_relative_link(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    link = tmp_path / "latest"
    atomic.symlink_atomic(link, tmp_path / "a")
    atomic.symlink_atomic(link, tmp_path / "b")
    assert os.readlink(link) == "b" and link.resolve() == (tmp_path / "b").resolve()
    assert _names(tmp_path) == ["a", "b", "latest"]
