"""``qkv train --preset fast``: the run's saved config is the preset's TrainConfig values
(qkv.training.presets, the oracle) with the flags given beside it winning; ``--precision``
reaches run.json; bad combinations are one-line errors."""

import json
from pathlib import Path

import pytest

from qkv import hardware
from qkv.cli.main import main
from qkv.training.presets import FAST, preset_values

TINY = [
    "--model", "gpt-nano", "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
    "--block-size", "16", "--eval-iters", "2", "--no-plot", "--quiet",
]  # fmt: skip
TEXT = "".join(f"line {i % 7} says {'ab' * (i % 5)}.\n" for i in range(300))


@pytest.fixture(autouse=True)
def _avx2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QKV_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2"}))


def test_preset_fast_is_its_values_with_given_flags_winning(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    run = tmp_path / "run"
    args = ["train", "--preset", "fast", *TINY, "--data", str(corpus), "--out-dir", str(run),
            "--max-iters", "4", "--eval-interval", "4", "--batch-size", "8"]  # fmt: skip
    assert main(args) == 0
    marker = json.loads((run / "run.json").read_text())
    saved = marker["train_config"]
    expected = {**FAST, "max_iters": 4, "batch_size": 8}
    assert {name: saved[name] for name in expected} == expected
    assert marker["hardware"]["capability"] == "AVX2"
    assert marker["hardware"]["precision"] == "fp32"  # auto on AVX2


def test_unknown_preset_and_preset_on_resume_are_refused(tmp_path: Path, capsys) -> None:
    with pytest.raises(ValueError, match="unknown training preset 'slow'; choose one of: fast"):
        preset_values("slow")
    code = main(["train", "--preset", "fast", "--resume", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--preset starts a run" in err[0]
