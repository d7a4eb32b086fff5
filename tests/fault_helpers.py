"""Shared by the fault, integrity, lock and security tests: a tiny trained run (trained once per
session, copied per test), the corpus it trained on, and the one-line-error assertion."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TINY_FLAGS = [
    "--model", "gpt-nano", "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
    "--block-size", "16", "--batch-size", "8", "--eval-iters", "2", "--no-plot",
    "--no-progress",
]  # fmt: skip
TEXT = "".join(f"line {i % 7} says {'ab' * (i % 5)}.\n" for i in range(300))

_TEMPLATES: dict[str, Path] = {}


def write_corpus(directory: Path, text: str = TEXT) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return path


def train_in_process(out_dir: Path, corpus: Path, *extra: str) -> None:
    """``qkv train`` (6 steps, evaluated and saved at 3 and 6) through the CLI entry point."""
    from qkv.cli.main import main

    args = ["train", *TINY_FLAGS, "--quiet", "--data", str(corpus), "--out-dir", str(out_dir),
            "--max-iters", "6", "--eval-interval", "3", *extra]  # fmt: skip
    assert main(args) == 0


def trained_run(tmp_path_factory: pytest.TempPathFactory, destination: Path) -> Path:
    """A copy at ``destination`` of a tiny finished run (checkpoints at steps 3 and 6, links
    ``latest`` and ``best``); its corpus is ``destination.parent / "corpus.txt"``."""
    if "run" not in _TEMPLATES:
        root = tmp_path_factory.mktemp("fault-template")
        corpus = write_corpus(root)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("QKV_CACHE", str(root / "cache"))
            train_in_process(root / "run", corpus)
        _TEMPLATES["run"] = root / "run"
    write_corpus(destination.parent)
    shutil.copytree(_TEMPLATES["run"], destination, symlinks=True)
    return destination


def one_line_error(err: str, code: int, *fragments: str) -> str:
    """Assert exit code 2 and exactly one stderr line ``qkv: error: ...`` holding
    ``fragments``; return the line."""
    assert code == 2, (code, err)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("qkv: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def qkv_process(
    *args: str, cache: Path, timeout: float = 300, **kwargs
) -> subprocess.CompletedProcess:
    """``python -m qkv ARGS`` as a user runs it (src on the path, private cache)."""
    env = {**os.environ, "QKV_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    import qkv

    source = Path(qkv.__file__).resolve().parents[1]  # the qkv this test session imports
    env["PYTHONPATH"] = os.pathsep.join([str(source), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "qkv", *args], env=env, capture_output=True, text=True,
        timeout=timeout, **kwargs,
    )  # fmt: skip


def cli_error(capsys: pytest.CaptureFixture, args: list[str], *fragments: str) -> str:
    """Run ``qkv ARGS`` in-process and assert :func:`one_line_error` on what it printed."""
    from qkv.cli.main import main

    capsys.readouterr()  # drop earlier output
    code = main(args)
    return one_line_error(capsys.readouterr().err, code, *fragments)
