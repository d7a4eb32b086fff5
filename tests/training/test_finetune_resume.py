"""Fine-tunes keep ``qkv train``'s fault guarantees (subprocesses, as a user runs them):
SIGKILL then ``--resume`` continues bit-identically for full and LoRA fine-tunes, and
Ctrl-C saves a checkpoint (the adapter, for LoRA) that resumes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from finetune_helpers import new_corpus, train_base

from qkv.io.integrity import read_manifest
from qkv.training.metrics import read_metrics

FLAGS = ["--block-size", "16", "--batch-size", "8", "--eval-iters", "4", "--no-plot",
         "--quiet", "--lr", "1e-3", "--dropout", "0.1"]  # fmt: skip


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("finetune-resume")
    train_base(root)
    return root


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "QKV_CACHE": str(root / "cache"), "OMP_NUM_THREADS": "1"}


def _qkv(*args: str) -> list[str]:
    return [sys.executable, "-m", "qkv", "train", *args]


def _curve(run: Path) -> list[tuple]:
    return [
        (r["step"], r.get("loss"), r.get("val_loss")) for r in read_metrics(run / "metrics.jsonl")
    ]


def _wait_for_step(process: subprocess.Popen, run: Path, step: int) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        steps = [r["step"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r]
        if steps and steps[-1] >= step:
            return
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("lora", [[], ["--lora-r", "4", "--lora-dropout", "0.1"]],
                         ids=["full", "lora"])  # fmt: skip
def test_sigkill_then_resume_matches_the_uninterrupted_finetune(root: Path, lora: list) -> None:
    env, name = _env(root), "lora" if lora else "full"
    common = [*FLAGS, *lora, "--init-from", str(root / "base"), "--data", str(new_corpus(root)),
              "--max-iters", "30", "--eval-interval", "10"]  # fmt: skip
    whole, killed = root / f"{name}-whole", root / f"{name}-killed"
    subprocess.run(_qkv(*common, "--out-dir", str(whole)), env=env, check=True, timeout=300)

    process = subprocess.Popen(_qkv(*common, "--out-dir", str(killed)), env=env)
    _wait_for_step(process, killed, 14)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL, "the run ended before it was killed"
    assert _curve(killed) != _curve(whole)
    latest = (killed / "latest").resolve()
    assert (latest / "adapter_model.safetensors").is_file() == bool(lora)

    subprocess.run(_qkv("--resume", str(killed), "--quiet"), env=env, check=True, timeout=300)
    assert _curve(killed) == _curve(whole)  # exact float equality, step for step
    assert len(_curve(whole)) == 30 + 3


@pytest.mark.slow
def test_ctrl_c_saves_the_adapter_and_the_run_resumes(root: Path) -> None:
    env, run = _env(root), root / "interrupted"
    process = subprocess.Popen(
        _qkv(*FLAGS, "--lora-r", "2", "--init-from", str(root / "base"), "--data",
             str(new_corpus(root)), "--max-iters", "100000", "--eval-interval", "100000",
             "--out-dir", str(run)),
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for_step(process, run, 5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2 and "checkpoint saved" in err and len(err.splitlines()) == 1
    latest = (run / "latest").resolve()
    step = read_manifest(latest)["step"]
    assert step >= 5 and (latest / "adapter_model.safetensors").is_file()
    resumed = subprocess.run(_qkv("--resume", str(run), "--max-iters", str(step + 2), "--quiet"),
                             env=env, timeout=300, capture_output=True, text=True)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert read_manifest((run / "latest").resolve())["step"] == step + 2
