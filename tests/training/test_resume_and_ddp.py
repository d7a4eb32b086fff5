"""Runs as a user runs them (subprocesses): SIGKILL then ``--resume`` continues bit-identically,
and 2 processes under torchrun (gloo) match 1 process with the same global batch."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qkv.training.metrics import read_metrics

FLAGS = [
    "--model", "gpt-nano", "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
    "--block-size", "16", "--batch-size", "8", "--warmup-iters", "5", "--lr", "3e-3",
    "--eval-iters", "4", "--no-plot", "--quiet",
]  # fmt: skip


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "QKV_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}


def _qkv(*args: str) -> list[str]:
    return [sys.executable, "-m", "qkv", "train", *args]


def _torchrun(*args: str) -> list[str]:
    """``qkv train`` as 2 processes under torchrun (gloo on the CPU)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", "2", "-m", "qkv", "train", *args]  # fmt: skip


def _succeeds(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(command, env=env, timeout=300, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def _curve(run: Path) -> list[tuple]:
    return [
        (r["step"], r.get("loss"), r.get("val_loss")) for r in read_metrics(run / "metrics.jsonl")
    ]


def _assert_same_curves(curve_one: list[tuple], curve_two: list[tuple]) -> None:
    """Same steps logged (rank 0 once), losses equal within float tolerance."""
    assert [c[0] for c in curve_one] == [c[0] for c in curve_two]
    for (_, loss_1, val_1), (_, loss_2, val_2) in zip(curve_one, curve_two):
        assert (loss_1 is None) == (loss_2 is None) and (val_1 is None) == (val_2 is None)
        if loss_1 is not None:
            assert loss_2 == pytest.approx(loss_1, rel=1e-4)
        if val_1 is not None:
            assert val_2 == pytest.approx(val_1, rel=1e-4)


def test_sigkill_then_resume_matches_uninterrupted_run(corpus_file: Path, tmp_path: Path) -> None:
    env = _env(tmp_path)
    # dropout on: the resumed run must also restore the torch RNG stream exactly
    common = [*FLAGS, "--data", str(corpus_file), "--max-iters", "40", "--eval-interval", "10",
              "--dropout", "0.1"]  # fmt: skip
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_qkv(*common, "--out-dir", str(full)), env=env, check=True, timeout=300)

    process = subprocess.Popen(_qkv(*common, "--out-dir", str(killed)), env=env)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        steps = [r["step"] for r in read_metrics(killed / "metrics.jsonl") if "loss" in r]
        if steps and steps[-1] >= 14:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL, "the run ended before it was killed"
    logged = _curve(killed)
    assert logged[-1][0] >= 14 and logged != _curve(full)
    assert (killed / "latest").resolve().name in ("step-00000010", "step-00000020")

    subprocess.run(_qkv("--resume", str(killed), "--quiet"), env=env, check=True, timeout=300)
    assert _curve(killed) == _curve(full)  # exact float equality, step for step
    assert len(_curve(full)) == 40 + 4


def test_two_processes_match_one_with_the_same_global_batch(
    corpus_file: Path, tmp_path: Path
) -> None:
    pytest.importorskip("torch.distributed.run")
    env = _env(tmp_path)
    common = [*FLAGS, "--data", str(corpus_file), "--max-iters", "8", "--eval-interval", "4",
              "--device", "cpu"]  # fmt: skip
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(_qkv(*common, "--out-dir", str(one)), env=env, check=True, timeout=300)
    _succeeds(_torchrun(*common, "--out-dir", str(two)), env)
    curve_one = _curve(one)
    _assert_same_curves(curve_one, _curve(two))
    assert curve_one[-1][2] < curve_one[1][1]  # it trained
    # only rank 0 wrote checkpoints: one run directory with the usual layout
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == [
        "step-00000004", "step-00000008",
    ]  # fmt: skip


def test_fsdp_two_processes_match_one_write_plain_checkpoints_and_resume(
    corpus_file: Path, tmp_path: Path
) -> None:
    pytest.importorskip("torch.distributed.fsdp")
    import torch

    import qkv

    env = _env(tmp_path)
    # one schedule (decay over 12 steps) for the 12-step run and the 8 + 4 steps sharded one
    common = [*FLAGS, "--data", str(corpus_file), "--eval-interval", "4", "--device", "cpu",
              "--grad-accum", "2", "--lr-decay-iters", "12"]  # fmt: skip
    one, sharded = tmp_path / "one", tmp_path / "sharded"
    subprocess.run(
        _qkv(*common, "--max-iters", "12", "--out-dir", str(one)), env=env, check=True, timeout=300
    )
    _succeeds(_torchrun("--fsdp", *common, "--max-iters", "8", "--out-dir", str(sharded)), env)
    # the checkpoint is a plain one: qkv.load reads it, weights equal the 1-process run's
    plain = qkv.load(one / "checkpoints" / "step-00000008")
    gathered = qkv.load(sharded / "checkpoints" / "step-00000008")
    for (name, a), b in zip(plain.state_dict().items(), gathered.state_dict().values()):
        torch.testing.assert_close(b, a, atol=2e-5, rtol=1e-4, msg=name)
    _succeeds(_torchrun("--fsdp", "--resume", str(sharded), "--max-iters", "12"), env)
    _assert_same_curves(_curve(one), _curve(sharded))
    # one process continues the sharded run (full optimizer state, loaded by parameter name)
    _succeeds(_qkv("--resume", str(sharded), "--max-iters", "14"), env)
    assert _curve(sharded)[-1][0] == 14
