"""``auto`` picks a backend that serves the call and says why; ALiBi slopes."""

from __future__ import annotations

import logging

import pytest
import torch

import qkv
from qkv.attention.alibi import alibi_slopes


def _tensors(n=256, h=4, d=16):
    return (torch.randn(1, h, n, d) for _ in range(3))


def test_auto_prefers_sdpa_where_it_serves_and_explains_refusals() -> None:
    q, k, v = _tensors()
    assert qkv.explain_backend(q, k, v, causal=True).backend == "sdpa"
    choice = qkv.explain_backend(q, k, v, softcap=30.0)
    assert choice.backend == "tiled"
    assert "softcap" in choice.refused["sdpa"]
    assert "not sdpa" in str(choice)


def test_auto_sends_small_cpu_problems_to_math_and_keeps_decoding_on_sdpa(monkeypatch) -> None:
    from qkv.attention import thresholds

    # the AVX-512 table, whatever this machine has (tests/attention/test_thresholds.py: others)
    monkeypatch.setattr(thresholds, "cpu_capability", lambda: "AVX512")
    q = torch.randn(12, 4, 64, 32)
    choice = qkv.explain_backend(q, q, q, causal=True)
    assert choice.backend == "math" and "small CPU problem" in choice.reason
    one = torch.randn(1, 12, 1, 64)
    cache = torch.randn(1, 12, 100, 64)
    assert qkv.explain_backend(one, cache, cache).backend == "sdpa"  # a decode step
    big = torch.randn(64, 12, 128, 64)  # 12.6M scores: beyond the cache-friendly size
    assert qkv.explain_backend(big, big, big, causal=True).backend == "sdpa"
    padded = qkv.explain_backend(q, q, q, mask=torch.ones(64, 64, dtype=torch.bool))
    assert padded.backend == "sdpa" and "row with no key" in padded.refused["math"]
    with pytest.raises(ValueError, match="math"):
        qkv.attention(q, q, q, alibi_slopes=alibi_slopes(4), backend="math")


def test_auto_gives_weights_from_reference() -> None:
    q, k, v = _tensors(n=64)
    choice = qkv.explain_backend(q, k, v, need_weights=True)
    assert choice.backend in ("reference", "tiled") and "sdpa" in choice.refused


def test_auto_result_matches_reference_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    q, k, v = _tensors()
    with caplog.at_level(logging.DEBUG, logger="qkv.attention"):
        out = qkv.attention(q, k, v, window=(16, 0))
    assert any("-> flash-tiles" in r.getMessage() for r in caplog.records)
    torch.testing.assert_close(
        out, qkv.attention(q, k, v, window=(16, 0), backend="reference"), atol=1e-5, rtol=1e-5
    )


def test_backends_listed_with_availability() -> None:
    infos = {b.name: b for b in qkv.attention_backends()}
    for name in ("reference", "sdpa", "math", "flash-tiles", "tiled"):
        assert infos[name].available, infos[name].reason


def test_alibi_slopes_power_of_two() -> None:
    torch.testing.assert_close(alibi_slopes(8), 2.0 ** -torch.arange(1, 9, dtype=torch.float32))
    torch.testing.assert_close(alibi_slopes(1), torch.tensor([2.0**-8]))


def test_alibi_slopes_not_power_of_two() -> None:
    # 12 heads: the 8-head slopes, then slopes 1, 3, 5, 7 of the 16-head sequence 2^(-k/2)
    expected = [2.0**-k for k in range(1, 9)] + [2.0 ** (-k / 2) for k in (1, 3, 5, 7)]
    torch.testing.assert_close(alibi_slopes(12), torch.tensor(expected))
    assert alibi_slopes(6).shape == (6,)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_alibi_slopes_rejects_bad_head_counts(bad) -> None:
    with pytest.raises(ValueError, match="positive int"):
        alibi_slopes(bad)


def test_alibi_bias_is_the_distance_penalty() -> None:
    """One head, slope 0.5, zero scores: weights ∝ exp(-0.5·|i + Nk - Nq - j|)."""
    q = torch.zeros(1, 1, 3, 4, dtype=torch.float64)
    k = torch.zeros(1, 1, 5, 4, dtype=torch.float64)
    v = torch.eye(5, dtype=torch.float64).view(1, 1, 5, 5)
    out = qkv.attention(q, k, v, alibi_slopes=torch.tensor([0.5]), backend="tiled")
    pos = torch.arange(3).view(-1, 1) + 2
    expected = torch.softmax(-0.5 * (pos - torch.arange(5)).abs().double(), dim=-1)
    torch.testing.assert_close(out[0, 0], expected)


def test_register_backend_adds_a_user_backend_beside_the_built_in_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from qkv.attention import Backend, register_backend, registry
    from qkv.attention.reference import reference_attention

    monkeypatch.setattr(registry, "_REGISTERED", {})
    calls = []

    def forward(call):
        calls.append(call.describe())
        return reference_attention(call)

    register_backend(Backend(name="mine", forward=forward, check=lambda call: None))
    q, k, v = _tensors(n=32)
    out = qkv.attention(q, k, v, causal=True, backend="mine")
    torch.testing.assert_close(out, qkv.attention(q, k, v, causal=True, backend="reference"))
    assert calls and "causal" in calls[0]
    names = [b.name for b in qkv.attention_backends()]
    assert names[-1] == "mine" and names.index("reference") == 0
    assert qkv.explain_backend(q, k, v).backend != "mine"  # auto keeps its measured order
    with pytest.raises(ValueError, match="'auto' is reserved"):
        register_backend(Backend(name="auto", forward=forward, check=lambda call: None))
    with pytest.raises(ValueError, match="unknown attention backend 'nope'.*mine"):
        qkv.attention(q, k, v, backend="nope")
