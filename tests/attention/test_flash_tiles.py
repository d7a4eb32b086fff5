"""The ``flash-tiles`` backend (PyTorch's CPU flash kernel per causal tile, optional ALiBi and
sliding window) against `tiled`'s loops and `reference`, and the calls it refuses."""

from __future__ import annotations

import pytest
import torch
from attention_cases import (
    Shape,
    backend_fn,
    make_problem,
    max_error,
    precision_eps,
    run_with_grads,
    torch_same_precision,
)

import qkv
from qkv.attention import flash_tiles
from qkv.attention.tiled import tiled_attention
from qkv.attention.validate import validate

SHAPES = [
    Shape(1, 1, 1, 1, 1, 8, 8),
    Shape(2, 4, 2, 7, 7, 8, 8),  # GQA
    Shape(1, 4, 1, 97, 130, 16, 16),  # MQA, Nk > Nq (decoding with a cache)
    Shape(2, 2, 2, 70, 70, 16, 16),
]
VARIANTS = ["causal", "causal+alibi", "causal+alibi_batch+scale", "causal+window_left+alibi"]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 16 rows, so that small problems cross many blocks."""
    monkeypatch.setattr(flash_tiles, "MIN_BLOCK_Q", 16)
    monkeypatch.setattr(flash_tiles, "MAX_BLOCK_Q", 16)
    monkeypatch.setattr(flash_tiles, "MIN_WINDOW_BLOCK_Q", 16)


def _loops(q, k, v, **options):
    return tiled_attention(validate(q, k, v, **options))[0]


def _flash_tiles(q, k, v, **options):
    """The backend by name, through the public API (it raises if it refuses the call)."""
    return qkv.attention(q, k, v, backend="flash-tiles", **options)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("variant", VARIANTS)
def test_flash_tiles_equals_reference_and_loops_in_float64(shape: Shape, variant: str) -> None:
    problem = make_problem(shape, variant, torch.float64, 11)
    expected = run_with_grads(backend_fn("reference"), problem, 3)
    for fn in (_flash_tiles, _loops):
        got = run_with_grads(fn, problem, 3)
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("variant", VARIANTS)
def test_flash_tiles_low_precision_rule(dtype: torch.dtype, variant: str) -> None:
    problem = make_problem(Shape(2, 4, 2, 97, 97, 16, 16), variant, dtype, 5)
    oracle = run_with_grads(backend_fn("reference"), problem, 3, dtype=torch.float64)
    peer = run_with_grads(torch_same_precision, problem, 3)
    got = run_with_grads(_flash_tiles, problem, 3)
    for label, a, p, o in zip(("out", "dq", "dk", "dv"), got, peer, oracle):
        assert a.dtype == dtype
        err, peer_err = max_error(a, o), max_error(p, o)
        assert err <= 2 * peer_err + precision_eps(dtype), (label, err, peer_err)


@pytest.mark.parametrize("left", [0, 3, 15, 16, 40, 200])
@pytest.mark.parametrize("how", ["causal", "right0", "alibi"])
def test_flash_tiles_sliding_window(left: int, how: str) -> None:
    """Window edges inside the diagonal tile (left < 15), at it, and beyond it; rows the past
    band cannot reach; Nk > Nq."""
    problem = make_problem(Shape(2, 4, 2, 70, 90, 16, 16), "none", torch.float64, left)
    options = {"window": (left, 0)} if how == "right0" else {"causal": True, "window": (left, 5)}
    if how == "alibi":
        options["alibi_slopes"] = torch.rand(2, 4)
    problem.options.update(options)
    expected = run_with_grads(backend_fn("reference"), problem, 3)
    got = run_with_grads(_flash_tiles, problem, 3)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_flash_tiles_gradcheck() -> None:
    gen = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(1, 2, n, 4, dtype=torch.float64, generator=gen, requires_grad=True)
        for n in (37, 45, 45)
    )
    slopes = torch.tensor([0.5, 0.125])
    torch.autograd.gradcheck(
        lambda q, k, v: _flash_tiles(q, k, v, causal=True, alibi_slopes=slopes), (q, k, v)
    )


def test_large_slopes_keep_float32_accuracy() -> None:
    """The past tile's row constant slope·(i − i0) must not cost precision near the diagonal."""
    problem = make_problem(Shape(1, 2, 2, 200, 200, 16, 16), "causal", torch.float32, 1)
    problem.options["alibi_slopes"] = torch.tensor([4.0, 1.0])
    oracle = run_with_grads(backend_fn("reference"), problem, 2, dtype=torch.float64)
    got = run_with_grads(_flash_tiles, problem, 2)
    for a, o in zip(got, oracle):
        assert max_error(a, o) < 1e-5


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({}, "causal calls only"),
        ({"causal": True, "mask": torch.ones(8, 8, dtype=torch.bool)}, "'tiled' serves masks"),
        ({"window": (4, 2)}, "causal calls only"),
        ({"causal": True, "softcap": 2.0}, "softcap and dropout"),
        ({"causal": True, "dropout_p": 0.1}, "softcap and dropout"),
        ({"causal": True, "need_weights": True}, "weights"),
    ],
)
def test_refusals_name_the_reason(options: dict, words: str) -> None:
    q = torch.randn(1, 2, 8, 4)
    reason = flash_tiles.flash_tiles_check(validate(q, q, q, **options))
    assert reason is not None and words in reason
    short = validate(q, q[:, :, :5], q[:, :, :5], causal=True)
    assert "Nq > Nk" in flash_tiles.flash_tiles_check(short)
    wide_v = validate(q, q, torch.randn(1, 2, 8, 6), causal=True)
    assert "head dim" in flash_tiles.flash_tiles_check(wide_v)
    with pytest.raises(ValueError, match="'flash-tiles' cannot serve.*causal calls only"):
        qkv.attention(q, q, q, backend="flash-tiles")


def test_auto_prefers_flash_tiles_exactly_where_it_serves() -> None:
    """Past sdpa and the small-problem reference, auto runs flash-tiles where it serves and
    names it; everywhere else it names tiled, with flash-tiles' refusal."""
    q = torch.randn(1, 2, 300, 8)  # 300² scores: beyond the small-problem sizes
    slopes = torch.tensor([0.5, 0.25])
    for options in ({"causal": True, "alibi_slopes": slopes}, {"window": (64, 0)}):
        call = validate(q, q, q, **options)
        assert flash_tiles.flash_tiles_check(call) is None
        assert qkv.explain_backend(q, q, q, **options).backend == "flash-tiles"
    choice = qkv.explain_backend(q, q, q, causal=True, softcap=3.0)
    assert choice.backend == "tiled" and "softcap" in choice.refused["flash-tiles"]


def test_tiled_by_name_always_runs_the_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    from qkv.attention import tiled

    def boom(*args, **kwargs):
        raise AssertionError("the loops ran")

    monkeypatch.setattr(tiled, "tiled_forward", boom)
    q = torch.randn(1, 2, 40, 8)
    slopes = torch.tensor([0.5, 0.25])
    qkv.attention(q, q, q, causal=True, alibi_slopes=slopes, backend="flash-tiles")
    with pytest.raises(AssertionError, match="the loops ran"):
        qkv.attention(q, q, q, causal=True, alibi_slopes=slopes, backend="tiled")


def test_block_rows_grow_with_length(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flash_tiles, "MIN_BLOCK_Q", 256)
    monkeypatch.setattr(flash_tiles, "MAX_BLOCK_Q", 1024)
    monkeypatch.setattr(flash_tiles, "MIN_WINDOW_BLOCK_Q", 64)
    sizes = [flash_tiles.block_rows(n) for n in (1, 4096, 8192, 16384, 100_000)]
    assert sizes == [256, 256, 512, 1024, 1024]
    windowed = [flash_tiles.block_rows(16384, left) for left in (0, 3, 512, 1000, 10**6)]
    assert windowed == [64, 64, 128, 128, 1024]
