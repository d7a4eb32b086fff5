"""Integrity on every load: ``qkv.load``, ``qkv.load_tokenizer``, ``qkv generate`` and
``qkv eval`` check a checkpoint's files against the SHA-256 in its manifest and name the file
that changed; the per-process hash cache never hides a change; a folder without a manifest
loads as before; a run folder opens its best checkpoint, else its latest."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import qkv
from fault_helpers import cli_error, trained_run
from qkv.atomic import symlink_atomic


@pytest.fixture
def run(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    return trained_run(tmp_path_factory, tmp_path / "run")


def _flip(path: Path, offset_from_end: int = 64, count: int = 4) -> None:
    """Flip ``count`` bytes inside the data section (the header stays valid)."""
    data = bytearray(path.read_bytes())
    for i in range(count):
        data[-offset_from_end - i] ^= 0xFF
    with open(path, "r+b") as handle:  # in place: same inode, same size
        handle.write(bytes(data))


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_flipped_bytes_in_the_weights_are_named(run: Path, capsys: pytest.CaptureFixture) -> None:
    weights = (run / "latest").resolve() / "model.safetensors"
    qkv.load(run / "latest")  # checked and cached: the change below must still be seen
    _flip(weights)
    with pytest.raises(ValueError, match=r"model\.safetensors changed since the checkpoint"):
        qkv.load(run / "latest")
    for args in (
        ["generate", str(run), "--max-new-tokens", "5"],
        ["eval", str(run), "--data", str(run.parent / "corpus.txt")],
        ["show", "line 1", "--model", str(run), "--out", str(run.parent / "x.png")],
    ):
        cli_error(capsys, args, "model.safetensors", "changed")


def test_the_hash_cache_sees_a_change_with_its_mtime_forged_back(run: Path) -> None:
    weights = (run / "latest").resolve() / "model.safetensors"
    qkv.load(run / "latest")
    stat = weights.stat()
    _flip(weights)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, inode and mtime
    assert weights.stat().st_mtime_ns == stat.st_mtime_ns
    with pytest.raises(ValueError, match="changed since"):
        qkv.load(run / "latest")


def test_an_unchanged_file_is_hashed_once_per_process(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qkv.io import integrity

    integrity.forget_hashes()
    hashed: list[str] = []
    real = hashlib.sha256
    counting = SimpleNamespace(sha256=lambda: hashed.append("x") or real())
    monkeypatch.setattr(integrity, "hashlib", counting)
    qkv.load(run / "latest")
    first = len(hashed)
    assert first == 2  # config.json and model.safetensors: the files load reads
    qkv.load(run / "latest")
    assert len(hashed) == first


def test_tokenizer_and_manifest_tampering(run: Path) -> None:
    checkpoint = (run / "latest").resolve()
    (checkpoint / "tokenizer.json").write_text(
        (checkpoint / "tokenizer.json").read_text().replace('"a"', '"A"', 1)
    )
    with pytest.raises(ValueError, match=r"tokenizer\.json changed since"):
        qkv.load_tokenizer(run / "latest")
    manifest = json.loads((checkpoint / "checkpoint.json").read_text())
    del manifest["files"]["model.safetensors"]
    (checkpoint / "checkpoint.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"model\.safetensors is not listed"):
        qkv.load(checkpoint)
    (checkpoint / "checkpoint.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"checkpoint\.json is corrupt"):
        qkv.load(checkpoint)


def test_a_folder_without_a_manifest_loads_as_before(tmp_path: Path) -> None:
    model = qkv.models.GPT(qkv.models.preset("gpt-nano", vocab_size=64)).eval()
    for format in ("qkv", "hf"):
        folder = qkv.save(model, tmp_path / format, format=format)
        assert not (folder / "checkpoint.json").exists()
        assert _same_weights(qkv.load(folder), model)


def test_a_run_folder_opens_its_best_checkpoint_else_its_latest(run: Path) -> None:
    steps = run / "checkpoints"
    step_3, step_6 = qkv.load(steps / "step-00000003"), qkv.load(steps / "step-00000006")
    assert not _same_weights(step_3, step_6)
    symlink_atomic(run / "best", steps / "step-00000003")
    assert _same_weights(qkv.load(run), step_3)
    (run / "best").unlink()
    assert _same_weights(qkv.load(run), step_6)
    tokenizer = qkv.load_tokenizer(run)
    assert tokenizer.decode(tokenizer.encode("line 3 says ab.")) == "line 3 says ab."
