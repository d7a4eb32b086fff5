"""Faults of the environment as a user meets them: each is one line ``qkv: error: ...`` with
exit code 2, no traceback, and no data lost. A missing device, a symlink loop or unreadable
input, a full disk (simulated here; ``test_faults_disk.py`` fills a real one), sizes that
cannot be allocated or would run silently for minutes, SIGTERM, and a closed pipe."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import qkv
from fault_helpers import (
    TINY_FLAGS,
    cli_error,
    one_line_error,
    qkv_process,
    trained_run,
    write_corpus,
)
from qkv.cli.main import main
from qkv.training.checkpoint import verify_checkpoint
from qkv.training.metrics import read_metrics


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QKV_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def run(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    return trained_run(tmp_path_factory, tmp_path / "run")


def _train(tmp_path: Path, *extra: str) -> list[str]:
    corpus = write_corpus(tmp_path)
    return ["train", *TINY_FLAGS, "--quiet", "--data", str(corpus), "--out-dir",
            str(tmp_path / "new"), "--max-iters", "6", "--eval-interval", "3", *extra]  # fmt: skip


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_missing_device_is_one_line(run: Path, tmp_path: Path, capsys) -> None:
    corpus = str(run.parent / "corpus.txt")
    for args in (
        ["generate", str(run), "--device", "cuda"],
        ["eval", str(run), "--data", corpus, "--device", "cuda"],
        _train(tmp_path, "--device", "cuda"),
    ):
        cli_error(capsys, args, "CUDA", "--device cpu")
    for args in (["generate", str(run), "--device", "gpu"], ["eval", str(run), "--data", corpus,
                                                             "--device", "cuda:x"]):  # fmt: skip
        cli_error(capsys, args, "is not a device")
    with pytest.raises(SystemExit) as exit_:  # explain has no --device: argparse says so
        main(["explain", "text", "--device", "cuda"])
    assert exit_.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "new" / "run.json").exists()


def test_a_symlink_loop_or_unreadable_input_is_one_line(
    run: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = tmp_path / "loop.txt"
    os.symlink(tmp_path / "back.txt", loop)
    os.symlink(loop, tmp_path / "back.txt")
    args = _train(tmp_path)
    args[args.index("--data") + 1] = str(loop)
    cli_error(capsys, args, "symlink loop", "--data")
    code = main(["eval", str(run), "--data", str(loop)])
    one_line_error(capsys.readouterr().err, code, "symlink loop")

    from qkv.data import corpus, sources

    def unreadable(path: Path) -> str:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(corpus, "_read_text_file", unreadable)  # root reads anything: simulate
    monkeypatch.setattr(sources, "read_text_pieces", lambda path, **_: unreadable(path))
    cli_error(capsys, _train(tmp_path), "permission denied", "EACCES")
    code = main(["eval", str(run), "--data", str(run.parent / "corpus.txt")])
    one_line_error(capsys.readouterr().err, code, "permission denied")


class _FullDiskFile:
    """A file whose writes fail with ENOSPC once ``room`` bytes are written."""

    def __init__(self, path: object, mode: str, room: int) -> None:
        self.handle = open(path, mode)  # noqa: SIM115
        self.room = room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.handle.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.handle, name)

    def __enter__(self) -> _FullDiskFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def test_a_disk_filling_during_a_checkpoint_keeps_the_last_one(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qkv.training import state_file

    opened: list[str] = []

    def full_on_second(path: object, mode: str = "r", *args: object) -> _FullDiskFile:
        opened.append(str(path))
        return _FullDiskFile(path, mode, room=10**9 if len(opened) == 1 else 2000)

    monkeypatch.setattr(state_file, "open", full_on_second, raising=False)
    err = cli_error(capsys, _train(tmp_path), "disk full (ENOSPC)",
                         "while writing checkpoint step 6", "step-00000003")  # fmt: skip
    assert "unexpected pos" not in err
    run = tmp_path / "new"
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-00000003"]  # no .tmp-*
    assert verify_checkpoint((run / "latest").resolve())["step"] == 3


def test_safetensors_write_faults_surface_as_os_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import safetensors.torch
    from safetensors import SafetensorError

    def full(*args: object, **kwargs: object) -> None:
        raise SafetensorError("Error while serializing: I/O error: No space left on device "
                              "(os error 28)")  # fmt: skip

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    model = qkv.models.GPT(qkv.models.preset("gpt-nano", vocab_size=32))
    with pytest.raises(OSError) as caught:
        qkv.save(model, tmp_path / "m")
    assert caught.value.errno == errno.ENOSPC
    assert not any((tmp_path / "m").iterdir())  # the atomic write left nothing behind


def test_sizes_that_cannot_be_allocated_are_refused_before_allocating(
    run: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    for flag, value in (("--block-size", 10**9), ("--batch-size", 10**7)):
        args = _train(tmp_path, flag, str(value))
        cli_error(capsys, args, "needs at least", "cannot be "
                       "allocated", "this machine has", flag)  # fmt: skip
    assert not (tmp_path / "new" / "run.json").exists()
    code = main(["generate", str(run), "--max-new-tokens", str(10**15)])
    one_line_error(capsys.readouterr().err, code, "needs at least", "--max-new-tokens")
    from qkv.training import limits

    monkeypatch.setattr(limits, "host_memory_bytes", lambda: 100_000)  # a machine of 100 kB
    code = main(["eval", str(run), "--data", str(run.parent / "corpus.txt"), "--batch-size",
                 "1000"])  # fmt: skip
    one_line_error(capsys.readouterr().err, code, "--batch-size 1,000 needs at least",
                   "this machine has 100.0 kB")  # fmt: skip


def test_settings_that_would_run_silently_for_minutes_are_refused(tmp_path: Path, capsys) -> None:
    code = main(_train(tmp_path, "--eval-iters", "300000"))
    one_line_error(capsys.readouterr().err, code, "--eval-iters 300000", "pass --eval-iters")
    code = main(_train(tmp_path, "--grad-accum", "1000000"))
    one_line_error(capsys.readouterr().err, code, "--grad-accum 1000000", "pass --grad-accum")
    assert not (tmp_path / "new" / "run.json").exists()  # refused before the folder is claimed


def test_sigterm_saves_like_ctrl_c(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path)
    run = tmp_path / "run"
    env = {**os.environ, "QKV_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    endless = ["--max-iters", "100000", "--eval-interval", "100000", "--quiet"]
    process = subprocess.Popen(
        [sys.executable, "-m", "qkv", "train", *TINY_FLAGS, *endless, "--data", str(corpus),
         "--out-dir", str(run)],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(read_metrics(run / "metrics.jsonl")) < 5:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    line = one_line_error(err, process.returncode, "interrupted by SIGTERM at step",
                          "checkpoint saved", "--resume")  # fmt: skip
    step = int(line.split("at step ")[1].split(";")[0])
    assert verify_checkpoint((run / "latest").resolve())["step"] == step >= 5
    resumed = qkv_process("train", "--resume", str(run), "--max-iters", str(step + 2),
                          "--quiet", cache=tmp_path / "cache")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert verify_checkpoint((run / "latest").resolve())["step"] == step + 2


def test_a_closed_pipe_ends_output_quietly(run: Path, tmp_path: Path) -> None:
    env = {**os.environ, "QKV_CACHE": str(tmp_path / "cache")}
    process = subprocess.Popen(
        [sys.executable, "-m", "qkv", "generate", str(run), "--max-new-tokens", "5000"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    process.stdout.read(20)
    process.stdout.close()
    _, err = process.communicate(timeout=240)
    assert process.returncode == 0
    assert b"Traceback" not in err and b"error" not in err, err
