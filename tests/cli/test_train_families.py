"""`qkv train --model <family>-tiny` trains each family's shape and the run reloads as it."""

from __future__ import annotations

from pathlib import Path

import pytest

import qkv
from qkv.cli.main import main

TEXT = "".join(f"line {i % 7} says {'ab' * (i % 5)}.\n" for i in range(300))


@pytest.mark.parametrize(
    ("name", "knob"), [("qwen3-tiny", "qk_norm"), ("gemma2-tiny", "sandwich_norm")]
)
def test_train_family_preset(
    name: str, knob: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QKV_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    run = tmp_path / "run"
    args = [
        "train", "--model", name, "--data", str(corpus), "--out-dir", str(run),
        "--block-size", "16", "--batch-size", "4", "--max-iters", "3", "--eval-interval", "3",
        "--eval-iters", "1", "--no-plot", "--quiet",
    ]  # fmt: skip
    assert main(args) == 0
    model = qkv.load(run)
    assert getattr(model.config, knob) is True
    assert model.config.layer_types == qkv.models.preset(name).layer_types
