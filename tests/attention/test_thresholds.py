"""``auto``'s CPU thresholds come from the table of the capability PyTorch runs with
(monkeypatched probe), an unmeasured capability gets the narrowest measured window, and
``qkv bench --quick`` says which capability it measured on."""

from __future__ import annotations

import pytest
import torch

import qkv
from qkv.attention import thresholds
from qkv.attention.thresholds import CpuThresholds

WIDE = CpuThresholds(
    math_min_queries=8, math_max_qk=128 * 128, math_max_qk_lowp=128 * 128, math_max_scores=2**20,
    reference_max_qk=128 * 128, source="wide",
)  # fmt: skip
NARROW = CpuThresholds(
    math_min_queries=8, math_max_qk=32 * 32, math_max_qk_lowp=64 * 64, math_max_scores=2**16,
    reference_max_qk=32 * 32, source="narrow",
)  # fmt: skip


@pytest.fixture
def capability(monkeypatch):
    monkeypatch.setattr(thresholds, "MEASURED", {"AVX512": WIDE, "AVX2": NARROW})
    monkeypatch.setattr(thresholds, "DEFAULT", thresholds._narrowest(thresholds.MEASURED))

    def use(name: str) -> None:
        monkeypatch.setattr(thresholds, "cpu_capability", lambda: name)

    return use


def _choice(n: int, dtype=torch.float32, **options) -> str:
    q = torch.randn(2, 2, n, 16, dtype=dtype)
    return qkv.explain_backend(q, q, q, **options).backend


def test_dispatch_uses_the_thresholds_of_the_capability(capability) -> None:
    capability("AVX512")
    assert _choice(64) == "math"
    assert _choice(64, softcap=5.0) == "reference"  # sdpa cannot serve softcap
    capability("AVX2")
    assert _choice(64) == "sdpa"  # 64² > the AVX2 table's 32²
    assert _choice(64, softcap=5.0) == "tiled"
    assert _choice(32) == "math"
    assert _choice(64, torch.bfloat16) == "math"  # the bf16 window is 64² in this table
    assert _choice(128, torch.bfloat16) == "sdpa"
    assert "narrow" in str(qkv.explain_backend(*(torch.randn(2, 2, 32, 16),) * 3))


def test_unknown_capability_gets_the_conservative_default(capability) -> None:
    capability("SVE256")
    assert thresholds.cpu_thresholds() is thresholds.DEFAULT
    assert thresholds.DEFAULT.math_max_qk == NARROW.math_max_qk
    assert thresholds.DEFAULT.reference_max_qk == NARROW.reference_max_qk
    assert _choice(64) == "sdpa"


def test_every_measured_table_is_valid_and_default_is_narrowest() -> None:
    for name, limits in thresholds.MEASURED.items():
        assert name == name.upper() and limits.source
        assert thresholds.DEFAULT.math_max_qk <= limits.math_max_qk
        assert thresholds.DEFAULT.reference_max_qk <= limits.reference_max_qk
    assert thresholds.thresholds_for(torch.backends.cpu.get_cpu_capability()) is (
        thresholds.cpu_thresholds()
    )


@pytest.mark.parametrize("field", ["math_max_qk", "math_max_qk_lowp", "reference_max_qk"])
@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_thresholds_are_validated(field, bad) -> None:
    values = dict(
        math_min_queries=8, math_max_qk=1, math_max_qk_lowp=1, math_max_scores=1, reference_max_qk=1
    )
    values[field] = bad
    with pytest.raises(ValueError, match=field):
        CpuThresholds(**values, source="x")


def test_bench_quick_prints_the_capability(capsys, capability) -> None:
    from qkv.cli.main import main

    capability("AVX2")
    assert main(["bench", "--quick", "--seq-len", "16", "--heads", "1", "--head-dim", "8",
                 "--repeats", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "measured on CPU capability AVX2" in out and "narrow" in out
