"""``qkv backends`` and ``qkv bench``: they run, show every backend and auto's choice, and turn
bad flags into one-line errors."""

from __future__ import annotations

import pytest

from qkv.cli.main import main


def test_backends_lists_availability(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    for name in ("reference", "sdpa", "math", "flash-tiles", "tiled", "triton", "auto"):
        assert name in out
    assert "available" in out


def test_bench_quick_table_names_auto_choice(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from qkv.attention import thresholds

    # the AVX-512 table (math for small fp32 problems), whatever this machine has
    monkeypatch.setattr(thresholds, "cpu_capability", lambda: "AVX512")
    assert main(["bench", "--quick", "--seq-len", "64", "--heads", "4", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")][1:]
    assert len(rows) >= 10
    by_variant = {row.split("|")[1].strip(): row for row in rows}
    assert "| math |" in by_variant["causal"]  # a small CPU problem: matmul-softmax-matmul
    assert "| tiled |" in by_variant["softcap 30"] or "| reference |" in by_variant["softcap 30"]
    assert "refuses" in by_variant["softcap 30"]  # sdpa cannot serve softcap
    assert "ms" in by_variant["plain"]
    assert "measured on CPU capability AVX512" in out


def test_bench_bad_flag_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--quick", "--seq-len", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qkv: error: --seq-len must be >= 1") and err.count("\n") == 1
