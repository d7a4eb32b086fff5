"""One trainer per run folder: a second ``qkv train`` (``--resume`` or ``--overwrite``) is
refused with the first one's pid and host while it lives; once it is dead (``kill -9``) its
stale lock is detected and taken over; a finished run leaves no stale lock."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


def test_a_second_lock_on_a_folder_is_refused_until_released(tmp_path: Path) -> None:
    from qkv.training import run_lock

    first = run_lock.acquire(tmp_path / "run")
    holder = json.loads((tmp_path / "run" / "train.lock").read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    with pytest.raises(run_lock.RunFolderInUse, match=f"pid {os.getpid()} on host"):
        run_lock.acquire(tmp_path / "run")  # flock conflicts between two opens, same process too
    with pytest.raises(run_lock.RunFolderInUse, match="in use"):
        run_lock.ensure_unlocked(tmp_path / "run")
    first.release()
    assert (tmp_path / "run" / "train.lock").read_text() == ""  # released cleanly: not stale
    said: list[str] = []
    run_lock.acquire(tmp_path / "run", say=said.append).release()
    assert said == []


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    from qkv.training import run_lock

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(dead.stdout)
    (tmp_path / "run").mkdir()
    stale = {"pid": pid, "host": "elsewhere", "started": "2026-12-01T00:00:00+00:00"}
    (tmp_path / "run" / "train.lock").write_text(json.dumps(stale))
    said: list[str] = []
    lock = run_lock.acquire(tmp_path / "run", say=said.append)
    assert len(said) == 1 and "stale lock" in said[0] and f"pid {pid} on host elsewhere" in said[0]
    assert json.loads((tmp_path / "run" / "train.lock").read_text())["pid"] == os.getpid()
    lock.release()


def _wait_for_steps(run: Path, process: subprocess.Popen, steps: int) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        records = read_metrics(run / "metrics.jsonl")
        if sum("loss" in r for r in records) >= steps:
            return
        time.sleep(0.05)
    raise AssertionError(f"the trainer did not reach step {steps}: {process.poll()}")


def test_two_trainers_on_one_folder(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path)
    run = tmp_path / "run"
    env = {**os.environ, "QKV_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    endless = ["--max-iters", "100000", "--eval-interval", "100000", "--checkpoint-interval", "2"]
    first = subprocess.Popen(
        [sys.executable, "-m", "qkv", "train", *TINY_FLAGS, *endless, "--data", str(corpus),
         "--out-dir", str(run), "--seed", "1"],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_for_steps(run, first, 3)
        who = f"pid {first.pid} on host {socket.gethostname()}"
        for extra in (
            ["--out-dir", str(run), "--overwrite", "--seed", "2"],
            ["--resume", str(run)],
        ):
            second = qkv_process("train", *TINY_FLAGS, "--data", str(corpus), "--max-iters", "4",
                                 *extra, cache=tmp_path / "cache")  # fmt: skip
            one_line_error(second.stderr, second.returncode, "is in use", who)
        assert first.poll() is None  # the first run was not disturbed
        seeds = {json.loads((run / "run.json").read_text())["train_config"]["seed"]}
        assert seeds == {1}
    finally:
        first.send_signal(signal.SIGKILL)  # dies holding the lock: the lock file stays filled
        first.communicate(timeout=60)
    assert json.loads((run / "train.lock").read_text())["pid"] == first.pid
    resumed = qkv_process("train", "--resume", str(run), "--max-iters", "1", "--no-progress",
                          cache=tmp_path / "cache")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"took over the stale lock of {run}" in resumed.stderr
    assert f"pid {first.pid}" in resumed.stderr
    verify_checkpoint((run / "latest").resolve())


def test_overwrite_and_resume_wait_for_the_lock_in_process(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from qkv.training import run_lock

    run = trained_run(tmp_path_factory, tmp_path / "run")
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    lock = run_lock.acquire(run)
    try:
        args = ["train", *TINY_FLAGS, "--quiet", "--data", str(tmp_path / "corpus.txt"),
                "--out-dir", str(run), "--overwrite", "--max-iters", "2"]  # fmt: skip
        cli_error(capsys, args, "is in use", f"pid {os.getpid()}")
        code = main(["train", "--resume", str(run), "--max-iters", "8", "--quiet"])
        one_line_error(capsys.readouterr().err, code, "is in use")
    finally:
        lock.release()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before  # nothing removed
    assert main(["train", "--resume", str(run), "--max-iters", "8", "--quiet"]) == 0
