"""A run folder is confined: every link and path it holds (``latest``, ``best``,
``checkpoints/``, ``metrics.jsonl``, the names in ``checkpoint.json``) must resolve inside
it. A folder pointing into another run is refused, naming the link, and the other run is left
byte for byte as it was."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

import qkv
from fault_helpers import cli_error, one_line_error, trained_run
from qkv.cli.main import main


def _snapshot(run: Path) -> dict[str, str]:
    """{relative path: sha256 or link target} of everything in a run folder."""
    found = {}
    for path in sorted(run.rglob("*")):
        key = str(path.relative_to(run))
        if path.is_symlink():
            found[key] = "-> " + os.readlink(path)
        elif path.is_file():
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture
def runs(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> tuple[Path, Path]:
    """(attacker's folder, victim run): two copies of a finished run."""
    return (
        trained_run(tmp_path_factory, tmp_path / "a" / "run"),
        trained_run(tmp_path_factory, tmp_path / "b" / "run"),
    )


def _point(link: Path, target: Path) -> None:
    link.unlink()
    os.symlink(target, link)


@pytest.mark.parametrize("entry", ["latest", "checkpoints", "metrics.jsonl"])
def test_resume_refuses_a_run_folder_pointing_into_another_run(
    entry: str, runs: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    mine, victim = runs
    if entry == "checkpoints":
        import shutil

        shutil.rmtree(mine / "checkpoints")
        os.symlink(victim / "checkpoints", mine / "checkpoints")
    else:
        target = (victim / "latest").resolve() if entry == "latest" else victim / entry
        _point(mine / entry, target)
    before = _snapshot(victim)
    for resume in (mine, mine / "latest"):
        code = main(["train", "--resume", str(resume), "--max-iters", "9", "--quiet"])
        one_line_error(capsys.readouterr().err, code, "points outside", entry)
    assert _snapshot(victim) == before


def test_readers_refuse_links_out_of_the_run_folder(
    runs: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    mine, victim = runs
    _point(mine / "latest", (victim / "latest").resolve())
    _point(mine / "best", (victim / "best").resolve())
    for reader in (qkv.load, qkv.load_tokenizer):
        with pytest.raises(ValueError, match="points outside its run folder"):
            reader(mine)
        with pytest.raises(ValueError, match="points outside its run folder"):
            reader(mine / "latest")
    cli_error(capsys, ["generate", str(mine)], "points outside")


def test_api_resume_must_use_a_checkpoint_of_its_own_folder(
    runs: tuple[Path, Path],
) -> None:
    from qkv.training import trainer
    from qkv.training.config import TrainConfig

    mine, victim = runs
    checkpoint = (victim / "latest").resolve()
    config = TrainConfig.from_dict(json.loads((checkpoint / "train_config.json").read_text()))
    before = _snapshot(victim)
    with pytest.raises(ValueError, match="points outside its run folder"):
        trainer.train(config.replace(max_iters=9), mine, resume_from=checkpoint, quiet=True)
    assert _snapshot(victim) == before


def test_manifest_names_and_file_links_stay_inside_the_checkpoint(
    runs: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    mine, victim = runs
    checkpoint = (mine / "latest").resolve()
    manifest = json.loads((checkpoint / "checkpoint.json").read_text())
    escaped = dict(manifest, files={**manifest["files"], "../../../b/run/run.json": "0" * 64})
    (checkpoint / "checkpoint.json").write_text(json.dumps(escaped))
    with pytest.raises(ValueError, match="not a file name inside the checkpoint"):
        qkv.load(checkpoint)
    code = main(["train", "--resume", str(mine), "--max-iters", "9", "--quiet"])
    one_line_error(capsys.readouterr().err, code, "not a file name inside")
    (checkpoint / "checkpoint.json").write_text(json.dumps(manifest))
    weights = checkpoint / "model.safetensors"
    weights.unlink()
    os.symlink((victim / "latest").resolve() / "model.safetensors", weights)
    with pytest.raises(ValueError, match="outside the checkpoint folder"):
        qkv.load(checkpoint)
