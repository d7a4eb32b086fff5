"""``precision``: ``auto`` trains exactly as fp32 where bf16 is not native and exactly as bf16
where it is (the oracles: the explicit runs), an emulated bf16 request warns once, and
``run.json`` records the capability and the choice."""

import argparse
import json
from pathlib import Path

import pytest
from train_helpers import TINY

from qkv import hardware
from qkv.training import trainer
from qkv.training.config import TrainConfig, add_config_flags, config_from_args


def _report(monkeypatch: pytest.MonkeyPatch, isa: str, *flags: str) -> None:
    monkeypatch.setattr(hardware, "cpu_capability", lambda: isa)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)


def _train(corpus: Path, out_dir: Path, precision: str) -> tuple[float, dict]:
    config = TrainConfig(
        **{**TINY, "data": str(corpus), "max_iters": 3, "eval_interval": 3,
           "precision": precision}
    )  # fmt: skip
    result = trainer.train(config, out_dir, quiet=True)
    return result.final_loss, json.loads((out_dir / "run.json").read_text())


def test_auto_trains_as_fp32_on_avx2(corpus_file, tmp_path, monkeypatch) -> None:
    _report(monkeypatch, "AVX2", "avx2", "avx512_bf16")  # an emulated AVX2 machine
    auto, marker = _train(corpus_file, tmp_path / "auto", "auto")
    fp32, _ = _train(corpus_file, tmp_path / "fp32", "fp32")
    assert auto == fp32
    assert marker["hardware"] == {
        "device": "cpu", "capability": "AVX2", "native_bf16": False,
        "precision_requested": "auto", "precision": "fp32",
    }  # fmt: skip


def test_auto_trains_as_bf16_where_native(corpus_file, tmp_path, monkeypatch, capsys) -> None:
    _report(monkeypatch, "AVX512", "avx512f", "avx512_bf16")
    auto, marker = _train(corpus_file, tmp_path / "auto", "auto")
    bf16, _ = _train(corpus_file, tmp_path / "bf16", "bf16")
    fp32, _ = _train(corpus_file, tmp_path / "fp32", "fp32")
    assert auto == bf16 and auto != fp32
    assert marker["hardware"]["capability"] == "AVX512-BF16"
    assert marker["hardware"]["precision"] == "bf16"
    assert "warning" not in capsys.readouterr().err  # native: nothing to warn about


def test_bf16_on_avx2_proceeds_with_one_warning_line(
    corpus_file, tmp_path, monkeypatch, capsys
) -> None:
    _report(monkeypatch, "AVX2", "avx2")
    _, marker = _train(corpus_file, tmp_path / "bf16", "bf16")
    assert marker["hardware"]["precision"] == "bf16"
    lines = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert lines == [f"qkv: {hardware.bf16_warning(hardware.probe('cpu'))}"]
    assert "AVX2" in lines[0] and "emulated" in lines[0]


def test_bf16_flag_is_an_alias_of_precision_bf16() -> None:
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    assert config_from_args(parser.parse_args(["--bf16"])).precision == "bf16"
    assert config_from_args(parser.parse_args(["--precision", "auto"])).precision == "auto"
    assert TrainConfig().precision == "fp32"
    with pytest.raises(ValueError, match="--bf16 and --precision auto contradict"):
        config_from_args(parser.parse_args(["--bf16", "--precision", "auto"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "fp16"])
    with pytest.raises(ValueError, match="precision must be"):
        TrainConfig(precision="fp16")  # type: ignore[arg-type]
