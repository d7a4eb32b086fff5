"""``qkv train`` from the command line: a run, and every bad input or fault as one line
``qkv: error: ...`` with exit code 2 and no checkpoint lost."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qkv.cli.main import main
from qkv.training.checkpoint import verify_checkpoint
from qkv.training.metrics import read_metrics

TINY = [
    "--model", "gpt-nano", "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
    "--block-size", "16", "--batch-size", "8", "--eval-iters", "2", "--no-plot", "--quiet",
]  # fmt: skip
TEXT = "".join(f"line {i % 7} says {'ab' * (i % 5)}.\n" for i in range(300))


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QKV_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture
def trained(corpus: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    args = ["train", *TINY, "--data", str(corpus), "--out-dir", str(run), "--max-iters", "6",
            "--eval-interval", "3"]  # fmt: skip
    assert main(args) == 0
    return run


def _one_line_error(capsys: pytest.CaptureFixture, code: int, *fragments: str) -> str:
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("qkv: error: ")
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_train_writes_a_loadable_run(trained: Path) -> None:
    import qkv

    assert (trained / "latest").resolve().name == "step-00000006"
    assert qkv.load(trained / "latest").config.n_positions == 16
    assert [r["step"] for r in read_metrics(trained / "metrics.jsonl") if "loss" in r] == [
        1, 2, 3, 4, 5, 6,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "fragment", "fix"),
    [
        (None, "does not exist", "--data"),
        (b"", "is empty", "--data"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "looks binary", "--data"),
        ("Gr\u00fc\u00dfe aus K\u00f6ln\n".encode("latin-1"), "not valid UTF-8", "iconv"),
        (b"too short for a window\n", "too short", "--block-size"),
    ],
)
def test_bad_corpus(
    content: bytes | None, fragment: str, fix: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "bad.txt"
    if content is not None:
        path.write_bytes(content)
    code = main(["train", *TINY, "--data", str(path), "--out-dir", str(tmp_path / "run")])
    _one_line_error(capsys, code, fragment, fix)


def test_out_dir_holding_another_run_is_refused(
    trained: Path, corpus: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["train", *TINY, "--data", str(corpus), "--out-dir", str(trained), "--max-iters", "3"]
    _one_line_error(capsys, main(args), "holds another run", "--resume", "--overwrite")
    assert (trained / "latest").resolve().name == "step-00000006"  # untouched
    assert main([*args, "--overwrite", "--eval-interval", "3"]) == 0
    assert sorted(p.name for p in (trained / "checkpoints").iterdir()) == ["step-00000003"]


def test_resume_faults(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["train", "--resume", str(tmp_path / "nowhere")])
    _one_line_error(capsys, code, "no such directory")
    (tmp_path / "empty").mkdir()
    _one_line_error(capsys, main(["train", "--resume", str(tmp_path / "empty")]), "no checkpoint")
    code = main(["train", "--resume", str(trained), "--block-size", "32"])
    _one_line_error(capsys, code, "does not match", "block_size=32", "checkpoint: 16")
    code = main(["train", "--resume", str(trained), "--overwrite"])
    _one_line_error(capsys, code, "contradict")
    weights = trained / "latest" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    _one_line_error(
        capsys, main(["train", "--resume", str(trained)]), "corrupt", "model.safetensors"
    )


def test_resume_from_the_latest_link_extends_the_run(
    trained: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["train", "--resume", str(trained / "latest"), "--max-iters", "8", "--quiet"]) == 0
    assert (trained / "latest").resolve().name == "step-00000008"
    steps = [r["step"] for r in read_metrics(trained / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 9))


def test_non_finite_loss_keeps_the_last_good_checkpoint(
    trained: Path, capsys: pytest.CaptureFixture
) -> None:
    good = verify_checkpoint(trained / "latest")
    args = ["train", "--resume", str(trained), "--quiet", "--max-iters", "40", "--lr", "1e6",
            "--min-lr", "0", "--grad-clip", "0"]  # fmt: skip
    err = _one_line_error(capsys, main(args), "at step", "last good checkpoint")
    assert "nan" in err or "inf" in err
    assert (trained / "latest").resolve().name == "step-00000006"
    assert verify_checkpoint(trained / "latest") == good


def test_ctrl_c_saves_and_exits_cleanly(corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "QKV_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    endless = ["--max-iters", "100000", "--eval-interval", "100000"]
    command = [sys.executable, "-m", "qkv", "train", *TINY, *endless, "--data", str(corpus),
               "--out-dir", str(run)]  # fmt: skip
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if len(read_metrics(run / "metrics.jsonl")) >= 5:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qkv: error: interrupted at step"), err
    step = int(lines[0].split("interrupted at step ")[1].split(";")[0])
    manifest = verify_checkpoint(run / "latest")
    assert manifest["step"] == step >= 5
    assert max(r["step"] for r in read_metrics(run / "metrics.jsonl")) == step
